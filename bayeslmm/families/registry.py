"""The model families, one line each, and the family of a built model.

:func:`bayeslmm.kinship_model` and :func:`bayeslmm.snp_model` build through this table, and
:func:`bayeslmm.sample` post-processes a posterior with the family of its model
(:func:`family_of`); :func:`bayeslmm.heritability` reports the family's summary rows. Adding a
family is one module that defines a :class:`~bayeslmm.families.base.Family` plus one line here
(DESIGN §6 has a worked example).
"""

from __future__ import annotations

from typing import Any

from bayeslmm.errors import InputError
from bayeslmm.families import components, linear, lmm, loci, multitrait, probit, sparse
from bayeslmm.families.base import Family, info_of

#: Every model family by name (``ModelInfo.family``). A selectable family (``family=`` of
#: :func:`bayeslmm.kinship_model`) is listed in the error for an unknown one in this order.
FAMILIES: dict[str, Family] = {
    "gaussian": lmm.GAUSSIAN,  # one kinship: kinship_model(y, K)
    "snp": lmm.SNP,  # normal SNP effects: snp_model(y, W, marginalize=True | False)
    "components": components.COMPONENTS,  # several kinships: kinship_model(y, [K1, K2])
    "probit": probit.PROBIT,  # binary trait: kinship_model(y, K, family="probit")
    "sparse": sparse.SPARSE,  # snp_model(y, W, marginalize=False, prior="mixture" | "horseshoe")
    "loci": loci.LOCI,  # major loci: kinship_model(y, K, fixed_snps=...)
    "linear": linear.LINEAR,  # no random effect: linear_model(y, X)
    "multitrait": multitrait.MULTITRAIT,  # T ≥ 2 traits: kinship_model(Y, K) with Y a table
}


def family_named(name: str) -> Family:
    """The registered family called ``name``.

    Raises
    ------
    InputError
        If no family of that name is registered (e.g. a family registered in another session).
    """
    family = FAMILIES.get(name)
    if family is None:
        raise InputError(
            f"no model family {name!r} is registered; registered: {sorted(FAMILIES)}. Register "
            "it in bayeslmm.families.registry.FAMILIES before sampling its models."
        )
    return family


def family_of(model: Any) -> Family:
    """The family of a model built by bayeslmm.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayeslmm.kinship_model`, :func:`bayeslmm.snp_model`,
        :func:`bayeslmm.linear_model` or a registered family's builder.

    Returns
    -------
    Family

    Raises
    ------
    InputError
        If bayeslmm did not build the model (see :func:`~bayeslmm.families.base.info_of`).
    """
    return family_named(info_of(model).family)


def selectable_families() -> list[str]:
    """Names that ``kinship_model(..., family=name)`` accepts, in registry order."""
    return [name for name, family in FAMILIES.items() if family.selectable]
