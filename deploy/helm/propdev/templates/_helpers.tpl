{{- define "propdev.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "propdev.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "propdev.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "propdev.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "propdev.fullname" .) -}}
{{- end -}}

{{- define "propdev.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "propdev.fullname" .)) -}}
{{- end -}}

{{/* The environment every propdev container shares (node, setup job). */}}
{{- define "propdev.env" -}}
- name: PROPDEV_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
- name: PROPDEV_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "propdev.secretName" . }}, key: database-url}}
{{- if .Values.redisSentinel.sentinels }}
- name: PROPDEV_REDIS_SENTINELS
  value: {{ join "," .Values.redisSentinel.sentinels | quote }}
- name: PROPDEV_REDIS_SERVICE
  value: {{ .Values.redisSentinel.service | quote }}
{{- else }}
- name: PROPDEV_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "propdev.secretName" . }}, key: redis-url}}
{{- end }}
- name: PROPDEV_MASTER_KEY
  valueFrom: {secretKeyRef: {name: {{ include "propdev.secretName" . }}, key: master-key}}
{{- with .Values.partnerUrl }}
- name: PROPDEV_PARTNER_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.otlpEndpoint }}
- name: PROPDEV_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: PROPDEV_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: PROPDEV_METRICS_ALLOW
  value: {{ join "," .Values.metricsAllow | quote }}
{{- with .Values.connectionsExempt }}
- name: PROPDEV_CONNECTIONS_EXEMPT
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.trustedProxies }}
- name: PROPDEV_TRUSTED_PROXIES
  value: {{ join "," . | quote }}
{{- end }}
{{- end -}}

{{- define "propdev.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "propdev.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}
