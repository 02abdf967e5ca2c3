{{/*
Names fixed by the contract with the profiles (conf/profiles/*.yaml) and Terraform (terraform/envs/*):
namespaces tributary (release) and tributary-jobs, service accounts tributary-spark, tributary-airflow-worker and
tributary-mlflow, Services tributary-mlflow and tributary-s3, ConfigMap tributary-env.
*/}}
{{- define "tributary.jobsNamespace" -}}tributary-jobs{{- end }}
{{- define "tributary.sparkServiceAccount" -}}tributary-spark{{- end }}
{{- define "tributary.airflowWorkerServiceAccount" -}}tributary-airflow-worker{{- end }}
{{- define "tributary.mlflowServiceAccount" -}}tributary-mlflow{{- end }}

{{- define "tributary.labels" -}}
app.kubernetes.io/name: tributary
app.kubernetes.io/part-of: tributary
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "tributary.selectorLabels" -}}
app.kubernetes.io/name: tributary
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tributary.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end }}

{{/* PostgreSQL host: the external database, else the in-cluster one. */}}
{{- define "tributary.databaseHost" -}}
{{- if .Values.cloud.database.host -}}
{{ .Values.cloud.database.host }}
{{- else -}}
tributary-postgresql.{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}
{{- end }}

{{/* Object-store URI of a bucket on the profile's platform. */}}
{{- define "tributary.bucketUri" -}}
{{- $scheme := ternary "gs" "s3" (eq .root.Values.profile "gke") -}}
{{- printf "%s://%s" $scheme .bucket -}}
{{- end }}

{{/* Pod security context of the platform's own pods. */}}
{{- define "tributary.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tributary.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
Invalid combinations fail at render time with the reason and the fix.
*/}}
{{- define "tributary.validate" -}}
{{- $local := has .Values.profile (list "kind" "minikube") -}}
{{- if ne .Release.Namespace "tributary" -}}
{{- fail (printf "install into namespace \"tributary\", not %q: the profiles address MLflow and the S3 store as <service>.tributary.svc (helm install tributary helm/tributary -n tributary --create-namespace)" .Release.Namespace) -}}
{{- end -}}
{{- if ne .Release.Name "tributary" -}}
{{- fail (printf "name the release \"tributary\", not %q: service names (tributary-mlflow, tributary-airflow-*) are part of the profiles' contract" .Release.Name) -}}
{{- end -}}
{{- if .Values.minio.enabled -}}
{{- fail "minio was removed: MinIO's community images are gone from Docker Hub and its repository is archived; set minio.enabled=false and use s3Store (the Versity S3 Gateway), which takes the same objectStore.existingSecret and buckets" -}}
{{- end -}}
{{- if and .Values.s3Store.enabled (not $local) -}}
{{- fail (printf "s3Store.enabled is for kind and minikube; profile %q stores data in %s" .Values.profile (ternary "GCS" "S3" (eq .Values.profile "gke"))) -}}
{{- end -}}
{{- if and .Values.s3Store.enabled (not .Values.objectStore.existingSecret) -}}
{{- fail "s3Store.enabled needs objectStore.existingSecret: the Secret holding the store's key pair (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)" -}}
{{- end -}}
{{- if and $local (not .Values.s3Store.enabled) (not .Values.objectStore.endpoint) -}}
{{- fail (printf "profile %q keeps its lake in the chart's S3 store: set s3Store.enabled=true (or objectStore.endpoint to another S3-compatible store)" .Values.profile) -}}
{{- end -}}
{{- if and .Values.postgresql.enabled .Values.cloud.database.host -}}
{{- fail (printf "postgresql.enabled deploys an in-cluster database but cloud.database.host is %q: choose one" .Values.cloud.database.host) -}}
{{- end -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.cloud.database.host) (or .Values.mlflow.enabled (index .Values "airflow" "enabled")) -}}
{{- fail "Airflow and MLflow need PostgreSQL: set cloud.database.host (Terraform does) or postgresql.enabled=true" -}}
{{- end -}}
{{- if and .Values.kafkaBroker.enabled (not $local) -}}
{{- fail (printf "kafkaBroker.enabled is for kind and minikube: on profile %q point streaming.kafka.bootstrapServers at %s" .Values.profile (ternary "Managed Service for Apache Kafka" "Amazon MSK" (eq .Values.profile "gke"))) -}}
{{- end -}}
{{- if and .Values.streaming.kafka.enabled (not .Values.streaming.kafka.bootstrapServers) (not .Values.kafkaBroker.enabled) -}}
{{- fail "streaming.kafka.enabled needs streaming.kafka.bootstrapServers (host:port of the brokers), or kafkaBroker.enabled=true on kind and minikube" -}}
{{- end -}}
{{- if and .Values.historyServer.enabled (not $local) -}}
{{- fail (printf "historyServer.enabled is for kind and minikube: profile %q writes no Spark event logs yet; set historyServer.enabled=false" .Values.profile) -}}
{{- end -}}
{{- if and .Values.priorityClasses.create (or (le (int .Values.priorityClasses.platform) (int .Values.priorityClasses.streaming)) (le (int .Values.priorityClasses.streaming) (int .Values.priorityClasses.batch))) -}}
{{- fail "priorityClasses must be ordered platform > streaming > batch" -}}
{{- end -}}
{{- end }}

{{/*
Checkov skips for the platform's workloads, each justified (checkov reads them from metadata.annotations):
- CKV_K8S_43 (image digest): images are pinned by immutable version tags; digests exist only once `make images`
  pushes them, so a release pins them with images.*.tag=<tag>@sha256:<digest>.
- CKV_K8S_15 (pull policy Always): kind and minikube run images loaded into the nodes, which Always would try to
  pull from a registry; the tags are immutable, so IfNotPresent is exact.
- CKV_K8S_35 (secrets as files): the programs read their credentials from the environment (MLflow, the
  PostgreSQL and S3 store entrypoints, boto3, libpq); the values come from Kubernetes Secrets by secretKeyRef.
*/}}
{{- define "tributary.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_43=Pinned by immutable version tag; a release adds the digest to images.*.tag (tag@sha256:...)
checkov.io/skip2: CKV_K8S_15=IfNotPresent is required for images loaded into kind/minikube nodes; tags are immutable
checkov.io/skip3: CKV_K8S_35=The program reads credentials from env; values come from Kubernetes Secrets via secretKeyRef
{{- end }}

{{/*
The stream's Kafka bootstrap servers: streaming.kafka.bootstrapServers, else the in-cluster broker's Service.
*/}}
{{- define "tributary.kafkaBootstrap" -}}
{{- .Values.streaming.kafka.bootstrapServers | default (printf "tributary-kafka.%s.svc:9092" .Release.Namespace) -}}
{{- end }}
