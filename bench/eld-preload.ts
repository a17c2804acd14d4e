// Loaded into the exporter by bench/test-host.ts only (NODE_OPTIONS=--import):
// event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) over a
// window the benchmark opens and closes with SIGUSR2. Closing writes the
// window's figures (nanoseconds) to $VIRT_BENCH_ELD_FILE. Nothing runs outside
// a window, so the exporter's own CPU figures are measured without it.
import { renameSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env['VIRT_BENCH_ELD_FILE'];
if (file !== undefined && file !== '') {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let on = false;
  let seq = 0;
  process.on('SIGUSR2', () => {
    if (!on) {
      h.reset();
      h.enable();
      on = true;
    } else {
      h.disable();
      on = false;
    }
    seq++;
    const stats = on ? {} : { count: h.count, max: h.max, mean: h.mean, p50: h.percentile(50), p99: h.percentile(99) };
    writeFileSync(`${file}.tmp`, JSON.stringify({ seq, on, ...stats }));
    renameSync(`${file}.tmp`, file);
  });
}
