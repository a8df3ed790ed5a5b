"""Execution wrappers: plain shell scripts that launch N x R ranks with the site's launcher
and bind GPUs per rank, plus the batch-script headers of each scheduler."""
