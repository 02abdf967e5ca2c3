# Metadata database: one RDS PostgreSQL instance for Airflow and MLflow.
#
# Managed rather than in-cluster: the Airflow run history and the MLflow model
# registry must survive a cluster rebuild, get backups and point-in-time
# recovery without an operator, and no PersistentVolume pins them to one zone
# or blocks `terraform destroy`. RDS creates the `airflow` database; the chart
# creates `mlflow` on first start (values key cloud.database.createDatabases).

locals {
  database_identifier = "${var.name_prefix}-metadata"
  database_username   = "tributary"
  database_names = {
    airflow = "airflow"
    mlflow  = "mlflow"
  }
}

# Alphanumeric so it can go into a connection URI unescaped.
resource "random_password" "database" {
  length  = 32
  special = false
}

resource "aws_db_subnet_group" "this" {
  name       = local.database_identifier
  subnet_ids = local.private_subnet_ids
  tags       = local.tags

  lifecycle {
    precondition {
      condition     = var.create_vpc || (var.vpc_id != null && length(var.private_subnet_ids) >= 2)
      error_message = "With create_vpc = false, set vpc_id and at least two private_subnet_ids in different zones."
    }
  }
}

resource "aws_security_group" "database" {
  name        = "${local.database_identifier}-db"
  description = "PostgreSQL from the EKS nodes of ${local.cluster_name}"
  vpc_id      = local.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "database_from_nodes" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from EKS nodes (pods use the node security group)"
  referenced_security_group_id = module.eks.node_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_parameter_group" "this" {
  name        = local.database_identifier
  family      = "postgres${var.database_engine_version}"
  description = "Tributary metadata database: TLS only, connection and lock logging"
  tags        = local.tags

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  parameter {
    name  = "log_lock_waits"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
}

data "aws_iam_policy_document" "rds_monitoring_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.database_identifier}-monitoring"
  description        = "Tributary: RDS enhanced monitoring of ${local.database_identifier}"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  identifier     = local.database_identifier
  engine         = "postgres"
  engine_version = var.database_engine_version
  instance_class = var.database_instance_class

  db_name  = local.database_names.airflow
  username = local.database_username
  password = random_password.database.result
  port     = 5432

  allocated_storage     = var.database_allocated_storage_gb
  max_allocated_storage = var.database_max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.this.arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.database.id]
  publicly_accessible    = false
  multi_az               = var.database_multi_az
  parameter_group_name   = aws_db_parameter_group.this.name

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  allow_major_version_upgrade         = false
  apply_immediately                   = false

  backup_retention_period   = var.database_backup_retention_days
  copy_tags_to_snapshot     = true
  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = var.database_skip_final_snapshot
  final_snapshot_identifier = "${local.database_identifier}-final"

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this.arn
  performance_insights_retention_period = 7

  tags = local.tags
}
