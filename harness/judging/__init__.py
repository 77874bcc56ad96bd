"""Judging: the statistics of a verdict (``stats``), the HTML report (``report``) and the
regression gate between two sessions' verdicts (``compare``)."""
