"""The jobs' transforms, by domain: DataFrames in, DataFrames out; no reads or writes (spark_jobs/io.py does those).

- ingest: ``schema`` (the raw, bronze, quarantine and audit schemas), ``validation`` (parse, check, quarantine
  with a reason), ``bronze`` (plan a batch: new, duplicate, quarantined; reconcile the counts);
- features: ``card_features`` (per-card windowed features, point in time);
- model: ``training_data`` (time split, arrays), ``model`` (the PyTorch network, fit, evaluate), ``model_report``
  (the holdout's plots, permutation importance, the model card);
- scoring: ``scoring`` (the champion from MLflow, batch scoring with mapInArrow on CPU or GPU).
"""
