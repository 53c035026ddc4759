"""Hyper-parameter search (``run_hyper.py``, the ``recbole-mamba-hyper`` console script; :mod:`.cli`).

- :mod:`.params`: RecBole's params files, as hyperopt and Ray Tune search spaces;
- :mod:`.study`: what a search varies and keeps, checked before any trial;
- :mod:`.hyperopt_search`: exhaustive, random and TPE search in this process;
- :mod:`.ray_search`: Ray Tune trials, a report per validation epoch (ASHA early stopping);
- :mod:`.trials`: the record of the trials, the best one, the results file.
"""
