function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The small page at / linking the endpoints. */
export function landingPage(telemetryPath: string, version: string, uri: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>virt-exporter</title></head>
<body>
<h1>virt-exporter ${esc(version)}</h1>
<p>Prometheus and OpenTelemetry exporter for Xen and QEMU/KVM hosts. Connected to <code>${esc(uri)}</code>.</p>
<ul>
<li><a href="${esc(telemetryPath)}">${esc(telemetryPath)}</a>: metrics (Prometheus text; OpenMetrics on request)</li>
<li><a href="/-/healthy">/-/healthy</a>: liveness</li>
<li><a href="/-/ready">/-/ready</a>: readiness</li>
</ul>
</body></html>
`;
}
