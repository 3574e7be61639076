{{/* Names and labels. */}}
{{- define "burstguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "burstguard.fullname" -}}
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

{{- define "burstguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "burstguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "burstguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "burstguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "burstguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "burstguard.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The port of config.http.listen (HOST:PORT). */}}
{{- define "burstguard.httpPort" -}}
{{- $listen := dig "http" "listen" "0.0.0.0:9100" .Values.config | toString -}}
{{- $port := regexFind "[0-9]+$" $listen -}}
{{- if or (not $port) (eq (int $port) 0) -}}
{{- fail (printf "config.http.listen %q must be HOST:PORT with a fixed port: the probes and the metrics Service need it" $listen) -}}
{{- end -}}
{{- int $port -}}
{{- end -}}

{{/* worker.shutdown_timeout_ms in milliseconds (durations: 10s, 500ms, 1m, or integer ms). */}}
{{- define "burstguard.shutdownMs" -}}
{{- $v := dig "worker" "shutdown_timeout_ms" "10s" .Values.config | toString -}}
{{- $digits := regexFind "^[0-9]+" $v -}}
{{- $unit := trimPrefix $digits $v -}}
{{- $mult := dict "" 1 "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 -}}
{{- if or (not $digits) (not (hasKey $mult $unit)) -}}
{{- fail (printf "config.worker.shutdown_timeout_ms %q is not a duration (500ms, 10s, 1m or integer ms)" $v) -}}
{{- end -}}
{{- mul (int64 $digits) (get $mult $unit) -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: > shutdown_timeout_ms + 5 s watchdog. */}}
{{- define "burstguard.terminationGrace" -}}
{{- $shutdownS := div (add (include "burstguard.shutdownMs" . | int64) 999) 1000 -}}
{{- $min := add $shutdownS 5 -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $min 10 -}}
{{- else -}}
{{- $g := int64 .Values.terminationGracePeriodSeconds -}}
{{- if le $g $min -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.worker.shutdown_timeout_ms + 5 s watchdog (%d s)" $g $min) -}}
{{- end -}}
{{- $g -}}
{{- end -}}
{{- end -}}

{{- define "burstguard.saslEnabled" -}}
{{- if .Values.kafka.sasl.enabled -}}
{{- if not .Values.kafka.sasl.existingSecret -}}
{{- fail "kafka.sasl.enabled needs kafka.sasl.existingSecret (the name of an existing Secret)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{- define "burstguard.tlsEnabled" -}}
{{- if .Values.kafka.tls.enabled -}}
{{- if not .Values.kafka.tls.existingSecret -}}
{{- fail "kafka.tls.enabled needs kafka.tls.existingSecret (the name of an existing Secret)" -}}
{{- end -}}
{{- if ne (empty .Values.kafka.tls.certKey) (empty .Values.kafka.tls.keyKey) -}}
{{- fail "kafka.tls.certKey and kafka.tls.keyKey are set together (client certificate) or not at all" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The worker's config.yaml: .Values.config plus what the chart manages. */}}
{{- define "burstguard.configYaml" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $kafka := dict -}}
{{- if hasKey $cfg "kafka" }}{{ $kafka = get $cfg "kafka" }}{{ end -}}
{{- $sasl := include "burstguard.saslEnabled" . -}}
{{- $tls := include "burstguard.tlsEnabled" . -}}
{{- if not (hasKey $kafka "security.protocol") -}}
{{- if and $sasl $tls }}{{ $_ := set $kafka "security.protocol" "SASL_SSL" }}
{{- else if $sasl }}{{ $_ := set $kafka "security.protocol" "SASL_PLAINTEXT" }}
{{- else if $tls }}{{ $_ := set $kafka "security.protocol" "SSL" }}
{{- end -}}
{{- end -}}
{{- if $sasl }}{{ $_ := set $kafka "sasl.mechanisms" .Values.kafka.sasl.mechanism }}{{ end -}}
{{- if $tls -}}
{{- with .Values.kafka.tls.caKey }}{{ $_ := set $kafka "ssl.ca.location" (printf "/run/secrets/burstguard/kafka-tls/%s" .) }}{{ end -}}
{{- with .Values.kafka.tls.certKey }}{{ $_ := set $kafka "ssl.certificate.location" (printf "/run/secrets/burstguard/kafka-tls/%s" .) }}{{ end -}}
{{- with .Values.kafka.tls.keyKey }}{{ $_ := set $kafka "ssl.key.location" (printf "/run/secrets/burstguard/kafka-tls/%s" .) }}{{ end -}}
{{- end -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- $_ := set $cfg "policy" "policy.yaml" -}}
{{- if .Values.signing.existingSecret -}}
{{- if not .Values.signing.keyId -}}
{{- fail "signing.keyId is required with signing.existingSecret (the worker writes it into every signed command)" -}}
{{- end -}}
{{- $signing := dict "key_file" (printf "/run/burstguard/signing/%s" .Values.signing.keyKey) "key_id" .Values.signing.keyId -}}
{{- $_ := set $cfg "signing" $signing -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
