"""A scan killed mid-run resumes to a byte-identical file; dask workers give the same table."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bed_reader import to_bed

import bayeslmm as bl
from bayeslmm.data.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys, time
import pandas as pd
import bayeslmm as bl
import bayeslmm.gwas.scanner as gwas
delay = float(sys.argv[4])
if delay:  # slow each chunk down so that the test can kill the run in the middle
    original = gwas._chunk_table
    def slow(*args, **kwargs):
        time.sleep(delay)
        return original(*args, **kwargs)
    gwas._chunk_table = slow
g = bl.read_plink(sys.argv[1])
y = pd.read_csv(sys.argv[1] + ".pheno.tsv", sep="\\t", index_col="IID")["y"]
bl.scan(g, y, out=sys.argv[2], chunk_size=40, resume=sys.argv[3] == "1", progress=False)
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("scan")
    data = simulate(150, 600, 0.4, n_chromosomes=3, seed=17)
    prefix = str(root / "c")
    to_bed(
        f"{prefix}.bed",
        data.G,
        properties={
            "fid": data.samples,
            "iid": data.samples,
            "sid": data.snps["snp"].to_numpy(),
            "chromosome": data.snps["chrom"].to_numpy(),
            "bp_position": data.snps["pos"].to_numpy(),
        },
    )
    pd.DataFrame({"IID": data.samples, "y": data.y}).to_csv(
        f"{prefix}.pheno.tsv", sep="\t", index=False
    )
    return prefix, root


def _run(prefix, out, resume, delay):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, prefix, str(out), str(int(resume)), str(delay)],
        env=env,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_scan__killed_and_resumed_gives_identical_file(cohort):
    prefix, root = cohort
    reference = root / "uninterrupted.tsv"
    assert _run(prefix, reference, False, 0).wait(timeout=300) == 0
    out = root / "killed.tsv"
    parts = Path(f"{out}.parts")
    proc = _run(prefix, out, False, 0.3)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(parts.glob("0*.tsv"))) < 4:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = len(list(parts.glob("0*.tsv")))
    assert 4 <= done < 15  # killed in the middle (15 chunks in all)
    assert not out.exists()  # the output never exists half-written
    assert _run(prefix, out, True, 0).wait(timeout=300) == 0
    assert out.read_bytes() == reference.read_bytes()
    assert not parts.exists()


@pytest.mark.slow
def test_scan__dask_local_cluster_equals_local_run(cohort):
    distributed = pytest.importorskip("dask.distributed")
    prefix, _ = cohort
    g = bl.read_plink(prefix)
    y = pd.read_csv(f"{prefix}.pheno.tsv", sep="\t", index_col="IID")["y"]
    local = bl.scan(g, y, chunk_size=100, progress=False)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = bl.scan(g, y, chunk_size=100, client=client, progress=False)
        in_memory = bl.scan(
            g.read(), y.to_numpy(), K=np.eye(150), chunk_size=100, client=client, progress=False
        )
    pd.testing.assert_frame_equal(remote, local)
    pd.testing.assert_frame_equal(
        in_memory, bl.scan(g.read(), y.to_numpy(), K=np.eye(150), chunk_size=100, progress=False)
    )
