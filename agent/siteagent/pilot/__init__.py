"""GPU pilot wrapper: bind GPUs, enter CVMFS, container and environment, run the PanDA pilot."""
