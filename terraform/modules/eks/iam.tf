# IAM roles for service accounts (IRSA).
#
# Each Tributary workload gets one role, trusted only by its own Kubernetes
# service account through the cluster's OIDC provider, and allowed only on its
# own buckets (plus the data KMS key). The chart annotates the service
# accounts with `eks.amazonaws.com/role-arn` (outputs.service_account_annotations).
#
#   spark   tributary-jobs/tributary-spark           rw: lake, checkpoints, spark-events
#   airflow tributary/tributary-airflow-worker       rw: airflow-logs   ro: lake, spark-events
#   mlflow  tributary/tributary-mlflow               rw: mlflow-artifacts
#
# MLflow runs with --serve-artifacts, so Spark and Airflow reach model
# artifacts through the MLflow server and need no access to that bucket.

locals {
  workloads = {
    spark = {
      namespace       = var.jobs_namespace
      service_account = "tributary-spark"
      read_write      = ["lake", "checkpoints", "spark_events"]
      read_only       = []
    }
    airflow = {
      namespace       = var.platform_namespace
      service_account = "tributary-airflow-worker"
      read_write      = ["airflow_logs"]
      read_only       = ["lake", "spark_events"]
    }
    mlflow = {
      namespace       = var.platform_namespace
      service_account = "tributary-mlflow"
      read_write      = ["mlflow_artifacts"]
      read_only       = []
    }
  }

  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_provider
}

data "aws_iam_policy_document" "workload_trust" {
  for_each = local.workloads

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "workload" {
  for_each = local.workloads

  statement {
    sid       = "ListOwnBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [for b in concat(each.value.read_write, each.value.read_only) : aws_s3_bucket.this[b].arn]
  }

  statement {
    sid       = "ReadObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [for b in concat(each.value.read_write, each.value.read_only) : "${aws_s3_bucket.this[b].arn}/*"]
  }

  dynamic "statement" {
    for_each = length(each.value.read_write) > 0 ? [1] : []

    content {
      sid       = "WriteObjects"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
      resources = [for b in each.value.read_write : "${aws_s3_bucket.this[b].arn}/*"]
    }
  }

  statement {
    sid       = "UseDataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role" "workload" {
  for_each = local.workloads

  name                 = "${var.name_prefix}-${each.key}"
  description          = "Tributary ${each.key}: IRSA role of ${each.value.namespace}/${each.value.service_account}"
  assume_role_policy   = data.aws_iam_policy_document.workload_trust[each.key].json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy" "workload" {
  for_each = local.workloads

  name   = "${var.name_prefix}-${each.key}-buckets"
  role   = aws_iam_role.workload[each.key].id
  policy = data.aws_iam_policy_document.workload[each.key].json
}

# ---------------------------------------------------------------------------
# cluster-autoscaler (kube-system/cluster-autoscaler)
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "cluster_autoscaler_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:kube-system:cluster-autoscaler"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "cluster_autoscaler" {
  # Describe/Get calls have no resource-level permissions in IAM.
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  # Labels and taints of zero-sized managed node groups, this cluster only.
  statement {
    sid       = "DescribeOwnNodegroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:nodegroup/${local.cluster_name}/*/*"]
  }

  # Resize only this cluster's managed node group ASGs (EKS tags them).
  statement {
    sid       = "ScaleOwnNodegroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/eks-*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${local.cluster_name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role" "cluster_autoscaler" {
  name               = "${var.name_prefix}-cluster-autoscaler"
  description        = "Tributary: IRSA role of kube-system/cluster-autoscaler"
  assume_role_policy = data.aws_iam_policy_document.cluster_autoscaler_trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "${var.name_prefix}-cluster-autoscaler"
  role   = aws_iam_role.cluster_autoscaler.id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}

# ---------------------------------------------------------------------------
# EBS CSI driver (kube-system/ebs-csi-controller-sa), for PersistentVolumes
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "ebs_csi_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:kube-system:ebs-csi-controller-sa"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ebs_csi" {
  name               = "${var.name_prefix}-ebs-csi"
  description        = "Tributary: IRSA role of kube-system/ebs-csi-controller-sa"
  assume_role_policy = data.aws_iam_policy_document.ebs_csi_trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.ebs_csi.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}
