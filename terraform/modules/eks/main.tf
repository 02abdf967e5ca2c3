# Tributary on Amazon EKS: network, cluster and node groups.
#
# Storage (S3 + KMS) is in storage.tf, workload IAM (IRSA) in iam.tf, the
# metadata database in database.tf and the Helm-installed add-ons
# (cluster-autoscaler, NVIDIA device plugin) in addons.tf.
#
# Naming: every AWS resource is called "<name_prefix>-<component>"; Terraform
# addresses are snake_case and a module's single instance of a type is "this".

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Only read when availability_zones is empty, and then slice() keeps the first N zones by name; a zone AWS adds later sorts after them, so the set does not grow.
  count = var.create_vpc && length(var.availability_zones) == 0 ? 1 : 0
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  cluster_name = "${var.name_prefix}-eks"
  partition    = data.aws_partition.current.partition
  account_id   = data.aws_caller_identity.current.account_id
  region       = data.aws_region.current.region

  tags = merge(var.tags, {
    project                     = "tributary"
    "tributary.dev/name-prefix" = var.name_prefix
    managed-by                  = "terraform"
  })

  azs = length(var.availability_zones) > 0 ? var.availability_zones : (
    var.create_vpc ? slice(data.aws_availability_zones.available[0].names, 0, var.availability_zone_count) : []
  )
  vpc_id             = var.create_vpc ? module.vpc[0].vpc_id : var.vpc_id
  private_subnet_ids = var.create_vpc ? module.vpc[0].private_subnets : var.private_subnet_ids

  # Node labels and the GPU taint are the contract with helm/tributary: the
  # chart selects pools with `tributary.dev/pool` and tolerates the GPU taint.
  node_group_labels = {
    system = {
      "tributary.dev/pool" = "system"
    }
    spark-cpu-spot = {
      "tributary.dev/pool"     = "spark-cpu"
      "tributary.dev/capacity" = "spot"
    }
    spark-cpu-on-demand = {
      "tributary.dev/pool"     = "spark-cpu"
      "tributary.dev/capacity" = "on-demand"
    }
    gpu = {
      "tributary.dev/pool"     = "gpu"
      "nvidia.com/gpu.present" = "true"
    }
  }

  # EKS spells the Kubernetes effect NoSchedule as NO_SCHEDULE.
  gpu_taint = {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  # Groups that may sit at zero nodes. cluster-autoscaler reads their labels
  # and taints from eks:DescribeNodegroup; the node-template tags below are the
  # documented fallback so scale-from-zero works either way.
  scale_from_zero_groups = {
    spark-cpu-spot      = { taints = {} }
    spark-cpu-on-demand = { taints = {} }
    gpu                 = { taints = { (local.gpu_taint.key) = "${local.gpu_taint.value}:NoSchedule" } }
  }

  autoscaler_template_tags = merge([
    for group, cfg in local.scale_from_zero_groups : merge(
      { for k, v in local.node_group_labels[group] : "${group}|k8s.io/cluster-autoscaler/node-template/label/${k}" => { group = group, value = v } },
      { for k, v in cfg.taints : "${group}|k8s.io/cluster-autoscaler/node-template/taint/${k}" => { group = group, value = v } },
    )
  ]...)

  block_device = {
    device_name = "/dev/xvda"
    ebs = {
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }
}

# ---------------------------------------------------------------------------
# Network (optional: bring your own with create_vpc = false)
# ---------------------------------------------------------------------------

# Community modules are pinned to the commit of their release tag (supply
# chain: a tag or registry version can be moved, a commit cannot).
module "vpc" {
  source = "git::https://github.com/terraform-aws-modules/terraform-aws-vpc.git?ref=82d1929e669efef4e2ad00611b8a68e7a56e049c" # v6.6.0
  count  = var.create_vpc ? 1 : 0

  name = "${var.name_prefix}-vpc"
  cidr = var.vpc_cidr
  azs  = local.azs

  private_subnets = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 8, 240 + i)]

  enable_nat_gateway     = true
  single_nat_gateway     = var.single_nat_gateway
  one_nat_gateway_per_az = !var.single_nat_gateway
  enable_dns_hostnames   = true

  manage_default_security_group = true

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_max_aggregation_interval               = 60
  flow_log_cloudwatch_log_group_retention_in_days = var.cluster_log_retention_days

  public_subnet_tags = {
    "kubernetes.io/role/elb" = 1
  }
  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = 1
  }

  tags = local.tags
}

# ---------------------------------------------------------------------------
# EKS cluster and managed node groups
# ---------------------------------------------------------------------------

module "eks" {
  source = "git::https://github.com/terraform-aws-modules/terraform-aws-eks.git?ref=bef29c4d9523523e57fe898643fde2895106b339" # v21.19.0

  name               = local.cluster_name
  kubernetes_version = var.kubernetes_version

  vpc_id     = local.vpc_id
  subnet_ids = local.private_subnet_ids

  endpoint_private_access      = true
  endpoint_public_access       = length(var.cluster_endpoint_public_access_cidrs) > 0
  endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs

  # Secrets are envelope-encrypted with a module-managed KMS key.
  create_kms_key    = true
  encryption_config = { resources = ["secrets"] }

  enabled_log_types                      = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  cloudwatch_log_group_retention_in_days = var.cluster_log_retention_days

  # IRSA: the OIDC provider that iam.tf's workload roles trust.
  enable_irsa = true

  authentication_mode                      = "API"
  enable_cluster_creator_admin_permissions = true
  access_entries = {
    for i, arn in var.cluster_admin_principal_arns : "admin-${i}" => {
      principal_arn = arn
      policy_associations = {
        admin = {
          policy_arn   = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
          access_scope = { type = "cluster" }
        }
      }
    }
  }

  addons = {
    vpc-cni = {
      before_compute = true
    }
    kube-proxy = {}
    coredns    = {}
    aws-ebs-csi-driver = {
      service_account_role_arn = aws_iam_role.ebs_csi.arn
      configuration_values = jsonencode({
        defaultStorageClass = { enabled = true }
      })
    }
  }

  eks_managed_node_groups = {
    system = {
      ami_type       = "AL2023_x86_64_STANDARD"
      capacity_type  = "ON_DEMAND"
      instance_types = var.system_node_group.instance_types
      min_size       = var.system_node_group.min_size
      max_size       = var.system_node_group.max_size
      desired_size   = var.system_node_group.desired_size
      labels         = local.node_group_labels["system"]
      block_device_mappings = {
        root = merge(local.block_device, { ebs = merge(local.block_device.ebs, { volume_size = var.system_node_group.disk_size_gb }) })
      }
    }

    spark-cpu-spot = {
      ami_type       = "AL2023_x86_64_STANDARD"
      capacity_type  = "SPOT"
      instance_types = var.spark_cpu_node_groups.spot_instance_types
      min_size       = var.spark_cpu_node_groups.spot_min_size
      max_size       = var.spark_cpu_node_groups.spot_max_size
      desired_size   = var.spark_cpu_node_groups.spot_min_size
      labels         = local.node_group_labels["spark-cpu-spot"]
      block_device_mappings = {
        root = merge(local.block_device, { ebs = merge(local.block_device.ebs, { volume_size = var.spark_cpu_node_groups.disk_size_gb }) })
      }
    }

    spark-cpu-on-demand = {
      ami_type       = "AL2023_x86_64_STANDARD"
      capacity_type  = "ON_DEMAND"
      instance_types = var.spark_cpu_node_groups.on_demand_instance_types
      min_size       = var.spark_cpu_node_groups.on_demand_min_size
      max_size       = var.spark_cpu_node_groups.on_demand_max_size
      desired_size   = var.spark_cpu_node_groups.on_demand_min_size
      labels         = local.node_group_labels["spark-cpu-on-demand"]
      block_device_mappings = {
        root = merge(local.block_device, { ebs = merge(local.block_device.ebs, { volume_size = var.spark_cpu_node_groups.disk_size_gb }) })
      }
    }

    # The NVIDIA AL2023 AMI ships the driver and the container toolkit; the
    # device plugin (addons.tf) advertises nvidia.com/gpu.
    gpu = {
      ami_type       = "AL2023_x86_64_NVIDIA"
      capacity_type  = var.gpu_node_group.capacity_type
      instance_types = var.gpu_node_group.instance_types
      min_size       = var.gpu_node_group.min_size
      max_size       = var.gpu_node_group.max_size
      desired_size   = var.gpu_node_group.min_size
      labels         = local.node_group_labels["gpu"]
      taints = {
        gpu = local.gpu_taint
      }
      block_device_mappings = {
        root = merge(local.block_device, { ebs = merge(local.block_device.ebs, { volume_size = var.gpu_node_group.disk_size_gb }) })
      }
    }
  }

  tags = local.tags
}

# cluster-autoscaler node-template hints for groups that scale from zero.
# Keys are static (group|tag) so the plan works before the ASGs exist.
resource "aws_autoscaling_group_tag" "node_template" {
  for_each = local.autoscaler_template_tags

  autoscaling_group_name = one(module.eks.eks_managed_node_groups[each.value.group].node_group_autoscaling_group_names)

  tag {
    key                 = split("|", each.key)[1]
    value               = each.value.value
    propagate_at_launch = false
  }
}
