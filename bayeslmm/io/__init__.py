"""Readers and writers: PLINK 1 binary, BIMBAM mean genotypes, phenotype tables, GCTA GRMs.

Genotypes are read lazily: :class:`Genotypes` knows the samples and the SNP table, and reads
the requested block of the genotype matrix on demand (PLINK ``.bed`` through ``bed-reader``).
Every malformed input raises an :class:`~bayeslmm.errors.InputError` naming the file, line or
sample and the way out.

Reading rules, the same in every reader (nothing is guessed silently):

- **Missing values** are exactly the codes in :data:`MISSING` (``NA``, ``na``, ``NaN``, ``nan``,
  ``-9`` and the empty field) and any number equal to -9 (``-9.0``). Other placeholders that tools
  write (``.``, ``N/A``, ``NULL``, ``?``, ``None``) are *not* missing: in a numeric column they are
  an InputError naming file, line, column and value (pass ``missing=`` to add them). Missing codes
  apply to values (phenotypes, covariates, dosages, the ``.fam`` phenotype), never to IDs: a
  sample called ``NA`` is read as the ID ``NA``.
- **Compression** is detected from the content (gzip magic bytes), never from the file name.
- **Chromosome codes** are normalized on read (:func:`normalize_chromosomes`): ``chr1`` = ``1``,
  X = 23, Y = 24, XY (pseudo-autosomal) = 25, MT = 26, as PLINK numbers them; 0 = unknown.

Modules, one concern each: ``files`` (gzip by content), ``values`` (missing codes, numbers of
text fields), ``chromosomes``, ``genotypes`` (:class:`Genotypes`, selections, the 0..2 check),
``plink``, ``bimbam``, ``tables``, ``grm`` (GCTA), ``outputs`` (atomic writes).
"""

from bayeslmm.io.bimbam import read_bimbam
from bayeslmm.io.chromosomes import (
    CHROMOSOME_NAMES,
    NON_AUTOSOMES,
    is_autosome,
    normalize_chromosomes,
)
from bayeslmm.io.genotypes import (
    DEFAULT_CHUNK,
    FAM_COLUMNS,
    SNP_COLUMNS,
    Genotypes,
    Index,
    as_index,
    check_dosages,
    in_memory_genotypes,
)
from bayeslmm.io.grm import read_grm, write_grm
from bayeslmm.io.plink import read_plink
from bayeslmm.io.tables import ID_NAMES, read_table
from bayeslmm.io.values import MISSING, MISSING_TEXT

__all__ = [
    "CHROMOSOME_NAMES",
    "DEFAULT_CHUNK",
    "FAM_COLUMNS",
    "ID_NAMES",
    "MISSING",
    "MISSING_TEXT",
    "NON_AUTOSOMES",
    "SNP_COLUMNS",
    "Genotypes",
    "Index",
    "as_index",
    "check_dosages",
    "in_memory_genotypes",
    "is_autosome",
    "normalize_chromosomes",
    "read_bimbam",
    "read_grm",
    "read_plink",
    "read_table",
    "write_grm",
]
