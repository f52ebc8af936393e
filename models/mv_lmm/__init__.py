"""Dense reference of the multi-trait LMM (see MODEL.md)."""
