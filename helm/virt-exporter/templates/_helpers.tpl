{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "virt-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "virt-exporter.fullname" -}}
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

{{/* The namespace of every object: namespaceOverride, else the release's. */}}
{{- define "virt-exporter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "virt-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "virt-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "virt-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "virt-exporter.labels" -}}
helm.sh/chart: {{ include "virt-exporter.chart" . }}
{{ include "virt-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: metrics
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "virt-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "virt-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "virt-exporter.image" -}}
{{- $registry := default .Values.image.registry .Values.global.imageRegistry }}
{{- $repo := printf "%s/%s" $registry .Values.image.repository | trimPrefix "/" }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The --connect URI: explicit, or derived from the driver. */}}
{{- define "virt-exporter.connectUri" -}}
{{- if .Values.connect }}
{{- .Values.connect }}
{{- else if eq .Values.driver "qemu" }}
{{- "qemu:///system" }}
{{- else if eq .Values.driver "xen" }}
{{- "xen:///" }}
{{- else if eq .Values.driver "test" }}
{{- .Values.test.uri }}
{{- else if eq .Values.driver "libvirt" }}
{{- printf "libvirt+%s:///system" .Values.libvirt.hypervisor }}
{{- with .Values.libvirt.socket }}{{ printf "?socket=%s" . }}{{ end }}
{{- else }}
{{- fail (printf "driver must be qemu, xen, libvirt or test, not %q" .Values.driver) }}
{{- end }}
{{- end }}

{{/* "true" when the Xen hypervisor path (privileged, root) is chosen. */}}
{{- define "virt-exporter.xenHypervisor" -}}
{{- if not (has .Values.xen.mode (list "proxy" "hypervisor")) }}
{{- fail (printf "xen.mode must be proxy or hypervisor, not %q" .Values.xen.mode) }}
{{- end }}
{{- if and (eq .Values.driver "xen") (eq .Values.xen.mode "hypervisor") }}true{{ end }}
{{- end }}

{{/* OTLP resource attributes as the exporter parses them: key=value pairs, values %-encoded (a "," or "%" in a value stays in the value). */}}
{{- define "virt-exporter.resourceAttributes" -}}
{{- $attributes := list "host.name=$(NODE_NAME)" "k8s.node.name=$(NODE_NAME)" "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" }}
{{- range $k, $v := .Values.telemetry.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%s" $k (toString $v | replace "%" "%25" | replace "," "%2C")) }}
{{- end }}
{{- join "," $attributes }}
{{- end }}

{{- define "virt-exporter.scheme" -}}
{{- if and .Values.webConfig.enabled .Values.webConfig.tls }}https{{ else }}http{{ end }}
{{- end }}

{{- define "virt-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "virt-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{- define "virt-exporter.adminSecretName" -}}
{{- default (printf "%s-admin" (include "virt-exporter.fullname" .)) .Values.admin.existingSecret }}
{{- end }}
