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

{{- define "lxc-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lxc-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lxc-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "lxc-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "lxc-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lxc-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Redis is configured (a URL or a Secret holding one). */}}
{{- define "lxc-operator.hasRedis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret.name -}}true{{- end -}}
{{- end -}}

{{/* An env entry NAME from a backend's url or existingSecret; nothing when neither is set. */}}
{{- define "lxc-operator.backendEnv" -}}
{{- $b := index . 1 -}}
{{- if $b.existingSecret.name }}
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
