{{/* The release's full name, at most 63 characters. */}}
{{- define "lxc-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lxc-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's labels, without a component. */}}
{{- define "lxc-operator.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "lxc-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's pods (the bundled servers' pods have another component). */}}
{{- define "lxc-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lxc-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "lxc-operator.labels" -}}
{{ include "lxc-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "lxc-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lxc-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Redis is configured (a URL, a Secret holding one, or the bundled one). */}}
{{- define "lxc-operator.hasRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret.name .Values.bundled.redis.enabled -}}true{{- end -}}
{{- end -}}

{{/* A database is configured (a URL, a Secret holding one, or the bundled one). */}}
{{- define "lxc-operator.hasDatabase" -}}
{{- if or .Values.database.url .Values.database.existingSecret.name .Values.bundled.postgres.enabled -}}true{{- end -}}
{{- end -}}

{{/* Labels of the bundled Postgres/Redis (index 0: the root context, 1: "postgres" or "redis"). */}}
{{- define "lxc-operator.bundledLabels" -}}
{{- $ := index . 0 -}}
{{ include "lxc-operator.commonLabels" $ }}
app.kubernetes.io/component: {{ index . 1 }}
lxc.infrahaus.dev/not-for-production: "true"
{{- end -}}

{{- define "lxc-operator.bundledSelector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "lxc-operator.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
The password of a bundled server: kept from the Secret of an earlier release (lookup), else
new. Index 0: the root context, 1: the Secret's name.
*/}}
{{- define "lxc-operator.bundledPassword" -}}
{{- $existing := lookup "v1" "Secret" (index . 0).Release.Namespace (index . 1) -}}
{{- if and $existing $existing.data $existing.data.password -}}
{{- $existing.data.password | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/* An env entry NAME from a backend's url or existingSecret; nothing when neither is set. */}}
{{- define "lxc-operator.backendEnv" -}}
{{- $b := index . 1 -}}
{{- $bundled := index . 2 -}}
{{- if and $bundled.enabled (or $b.url $b.existingSecret.name) -}}
{{- fail (printf "set %s.url or %s.existingSecret, or bundled.%s.enabled, not both" (index . 3) (index . 3) (index . 3)) -}}
{{- end -}}
{{- if $bundled.enabled }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $bundled.secretName }}
      key: url
{{- else if $b.existingSecret.name }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $b.existingSecret.name }}
      key: {{ $b.existingSecret.key | default "url" }}
{{- else if $b.url }}
- name: {{ index . 0 }}
  value: {{ $b.url | quote }}
{{- end }}
{{- end -}}
