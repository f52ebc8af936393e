"""Dense reference of the LMM with several variance components (see MODEL.md)."""
