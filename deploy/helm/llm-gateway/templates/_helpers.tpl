{{/* The chart name, or nameOverride. */}}
{{- define "llm-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource name: fullnameOverride, or <release>-<chart> (the release alone when it already holds the chart's name). */}}
{{- define "llm-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llm-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "llm-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "llm-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llm-gateway.configMapName" -}}
{{- default (printf "%s-config" (include "llm-gateway.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* The chart's own Secret: the master key, encryption key and datastore URLs given as values. */}}
{{- define "llm-gateway.secretName" -}}
{{- include "llm-gateway.fullname" . }}
{{- end }}

{{- define "llm-gateway.providerKeysSecretName" -}}
{{- printf "%s-provider-keys" (include "llm-gateway.fullname" .) }}
{{- end }}

{{/*
The secret-backed settings: environment variable -> the values block that supplies it.
One list, used by the Secret (what to store) and the Deployment (what to reference).
*/}}
{{- define "llm-gateway.secretSettings" -}}
{{- $m := .Values.masterKey }}
{{- $e := .Values.encryptionKey }}
{{- $r := .Values.redis }}
{{- $d := .Values.database }}
GATEWAY_MASTER_KEY: {{ dict "value" $m.value "existingSecret" $m.existingSecret "secretKey" $m.secretKey | toJson }}
GATEWAY_ENCRYPTION_KEY: {{ dict "value" $e.value "existingSecret" $e.existingSecret "secretKey" $e.secretKey | toJson }}
GATEWAY_REDIS_URL: {{ dict "value" $r.url "existingSecret" $r.existingSecret "secretKey" $r.secretKey | toJson }}
GATEWAY_DATABASE_URL: {{ dict "value" $d.url "existingSecret" $d.existingSecret "secretKey" $d.secretKey | toJson }}
{{- $t := .Values.metricsToken }}
GATEWAY_METRICS_TOKEN: {{ dict "value" $t.value "existingSecret" $t.existingSecret "secretKey" $t.secretKey | toJson }}
{{- end }}

{{/* The most pods that can run at once: the HPA's maximum, or replicaCount. */}}
{{- define "llm-gateway.mostPods" -}}
{{- ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled }}
{{- end }}

{{/* "yes" when the pods share Redis (limits, budgets) and Postgres (keys, ledger). */}}
{{- define "llm-gateway.sharedStores" -}}
{{- if and (or .Values.redis.url .Values.redis.existingSecret) (or .Values.database.url .Values.database.existingSecret) }}yes{{ end }}
{{- end }}

{{/* The metrics token's Secret and key: the one Prometheus presents to /metrics. */}}
{{- define "llm-gateway.metricsTokenSecret" -}}
{{- default (include "llm-gateway.secretName" .) .Values.metricsToken.existingSecret }}
{{- end }}

{{/* Whether the chart's Secret has anything to hold. */}}
{{- define "llm-gateway.ownSecretNeeded" -}}
{{- range $env, $spec := include "llm-gateway.secretSettings" . | fromYaml }}
{{- if and $spec.value (not $spec.existingSecret) }}yes{{ end }}
{{- end }}
{{- end }}

{{- define "llm-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* preStop pause + drain + margin: the kubelet's grace period starts with the preStop hook. */}}
{{- define "llm-gateway.terminationGracePeriodSeconds" -}}
{{- $g := .Values.gateway }}
{{- add (int $g.preStopSeconds) (int (ceil $g.drainSeconds)) (int $g.terminationMarginSeconds) }}
{{- end }}
