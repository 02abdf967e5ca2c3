# The chart's resources moved into modules/chart (shared by envs/eks and
# envs/gke). These blocks move a stack applied before that in place; nothing
# is destroyed or recreated.

moved {
  from = kubernetes_namespace_v1.platform[0]
  to   = module.chart[0].kubernetes_namespace_v1.platform
}

moved {
  from = kubernetes_secret_v1.database[0]
  to   = module.chart[0].kubernetes_secret_v1.database
}

moved {
  from = random_password.mlflow_admin[0]
  to   = module.chart[0].random_password.mlflow_admin
}

moved {
  from = random_password.mlflow_flask_secret[0]
  to   = module.chart[0].random_password.mlflow_flask_secret
}

moved {
  from = kubernetes_secret_v1.mlflow_auth[0]
  to   = module.chart[0].kubernetes_secret_v1.mlflow_auth
}

moved {
  from = helm_release.tributary[0]
  to   = module.chart[0].helm_release.tributary
}
