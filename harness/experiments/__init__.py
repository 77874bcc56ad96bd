"""The paper's experiments: protocol configs and their run grids per profile (``protocols``), and
the tools around a full replication: cost plan (``plan``), full-shape dry run (``dryrun``) and
the GPU check (``gpucheck``)."""
