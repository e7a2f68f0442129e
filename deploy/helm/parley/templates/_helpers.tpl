{{- define "parley.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "parley.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "parley.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "parley.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "parley.gpuImage" -}}
{{- printf "%s:%s" (.Values.gpu.image.repository | default .Values.image.repository) (.Values.gpu.image.tag | default .Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "parley.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "parley.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every Parley container: secrets by reference, plain settings from values. */}}
{{- define "parley.env" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: DJANGO_SETTINGS_MODULE
  value: config.settings.production
- name: ALLOWED_HOSTS
  value: {{ printf "%s,$(POD_IP),localhost" (join "," .Values.hosts) | quote }}
- name: CSRF_TRUSTED_ORIGINS
  value: {{ include "parley.origins" . | quote }}
- name: PARLEY_VAR_DIR
  value: /data
- name: MEDIA_ROOT
  value: /data/media
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "parley.origins" -}}
{{- $origins := list -}}
{{- range .Values.hosts -}}{{- $origins = append $origins (printf "https://%s" .) -}}{{- end -}}
{{- join "," $origins -}}
{{- end -}}

{{- define "parley.envFrom" -}}
- secretRef:
    name: {{ .Values.existingSecret }}
{{- end -}}

{{- define "parley.dataVolume" -}}
- name: data
{{- if .Values.data.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.data.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}
