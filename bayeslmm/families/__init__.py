"""Model families.

The PyMC models (Gaussian kinship/SNP, several components, probit, sparse SNP priors, major
loci, linear), their priors and the family registry.
"""
