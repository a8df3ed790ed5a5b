"""site-agent: run PanDA/Harvester pilots on an HPC site through Globus Compute."""

__version__ = "0.1.0"
