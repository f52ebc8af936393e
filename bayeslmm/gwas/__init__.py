"""Association scans.

Per-SNP tests in the eigenbasis, LOCO, chunked and resumable output (numpy only).
"""
