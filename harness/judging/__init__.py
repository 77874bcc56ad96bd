"""Judging: the statistics of a verdict (``stats``), the HTML report (``report``), the
regression gate between two sessions' verdicts (``compare``) and the verdict table of several
sessions (``overview``)."""
