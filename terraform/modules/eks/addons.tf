# Cluster add-ons installed with Helm: cluster-autoscaler and the NVIDIA
# device plugin. The calling root module configures the helm provider against
# this cluster (see envs/eks).
#
# Why cluster-autoscaler and not Karpenter: the node pools are plain managed
# node groups declared here with explicit labels, taints and min/max, which
# the structural tests check and which mirror GKE's node pools one to one.
# Karpenter would move that into NodePool custom resources that only exist
# after the CRDs are installed, the ordering problem that makes EKS apply and
# destroy flaky. The priority expander prefers the spot group.

resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  namespace  = "kube-system"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.cluster_autoscaler_chart_version
  wait       = true
  timeout    = 600

  values = [yamlencode({
    cloudProvider = "aws"
    awsRegion     = local.region
    autoDiscovery = {
      clusterName = module.eks.cluster_name
    }
    image = {
      tag = var.cluster_autoscaler_image_tag
    }
    rbac = {
      serviceAccount = {
        create = true
        name   = "cluster-autoscaler"
        annotations = {
          "eks.amazonaws.com/role-arn" = aws_iam_role.cluster_autoscaler.arn
        }
      }
    }
    extraArgs = {
      expander                      = "priority"
      balance-similar-node-groups   = true
      skip-nodes-with-system-pods   = false
      skip-nodes-with-local-storage = false
      # Longer than Spark's executorIdleTimeout (60s) so dynamic allocation
      # releases executors before their node is considered for removal.
      scale-down-unneeded-time = "10m"
      max-node-provision-time  = "10m"
    }
    # Regexes over ASG names (eks-<nodegroup>-<id>): spot first, then any.
    expanderPriorities = {
      "50" = [".*spark-cpu-spot.*"]
      "10" = [".*"]
    }
    nodeSelector = local.node_group_labels["system"]
    resources = {
      requests = { cpu = "100m", memory = "300Mi" }
      limits   = { memory = "600Mi" }
    }
  })]

  depends_on = [module.eks, aws_iam_role_policy.cluster_autoscaler]
}

resource "helm_release" "nvidia_device_plugin" {
  name       = "nvidia-device-plugin"
  namespace  = "kube-system"
  repository = "https://nvidia.github.io/k8s-device-plugin"
  chart      = "nvidia-device-plugin"
  version    = var.nvidia_device_plugin_chart_version
  # GPU nodes may be at zero: the DaemonSet has nothing to wait for.
  wait = false

  values = [yamlencode({
    # The chart's default affinity matches nvidia.com/gpu.present=true (set
    # on the GPU node group) and it tolerates nvidia.com/gpu:NoSchedule.
    nodeSelector = { "tributary.dev/pool" = "gpu" }
    tolerations = [
      { key = local.gpu_taint.key, operator = "Exists", effect = "NoSchedule" },
    ]
  })]

  depends_on = [module.eks]
}
