// The figures the benchmarks documentation publishes come from these reports: the wrk table's
// ratios to the bare forwarder and the scale-out sizing table.
import { describe, expect, it } from 'vitest';
import { roundRatio, wrkTable, type WrkResult } from '../../bench/wrk.js';
import { scaleReport, type ScaleResult } from '../../bench/scale.js';

function result(target: string, slices: number[], requestsPerSlice = 1000): WrkResult {
  const requests = requestsPerSlice * slices.length;
  const cpuS = slices.reduce((sum, us) => sum + (us * requestsPerSlice) / 1e6, 0);
  return {
    scenario: 'chat',
    target,
    requests,
    durationS: 2 * slices.length,
    rps: requests / (2 * slices.length),
    errors: 0,
    cpuUsPerReq: (cpuS * 1e6) / requests,
    sliceCpuUsPerReq: slices,
    latencyP50Ms: 1,
    latencyP99Ms: 2,
  };
}

describe('wrk table: ratios to the bare forwarder', () => {
  it('the median round ratio pairs each slice with bare’s slice of the same round, so one slow round does not move it', () => {
    const bare = result('bare', [100, 100, 200, 100, 100]);
    // Round 3 ran while the host was slow for both; tollgate also had one slow slice of its own (round 5).
    const tollgate = result('tollgate', [130, 130, 260, 130, 400]);
    expect(roundRatio(tollgate, bare)).toBeCloseTo(1.3, 6);
    // The ratio of the sums takes the outlier in: 1050 / 600.
    expect(tollgate.cpuUsPerReq / bare.cpuUsPerReq).toBeCloseTo(1.75, 6);
  });

  it('prints both ratios for every target of a scenario', () => {
    const bare = result('bare', [100, 100]);
    const tollgate = result('tollgate', [150, 130]);
    const table = wrkTable([bare, tollgate], () => 'chat non-stream');
    const row = table.split('\n').find((line) => line.includes('tollgate')) as string;
    const cells = row.trim().split(/\s{2,}/);
    const header = (table.split('\n')[0] as string).trim().split(/\s{2,}/);
    expect(cells[header.indexOf('cpu × bare')]).toBe('1.40');
    expect(cells[header.indexOf('median round × bare')]).toBe('1.40');
    expect(cells[header.indexOf('slices µs/req')]).toBe('130–150');
  });
});

describe('scale-out sizing', () => {
  it('sizes from the highest costs seen: a primary at 70% of its core, a gateway core at 100%', () => {
    const results: ScaleResult[] = [
      { instances: 1, rps: 5000, errors: 0, gatewayCpuUsPerReq: 200, redisCpuUsPerReq: 10, redisCoreShare: 0.05 },
      { instances: 2, rps: 5200, errors: 0, gatewayCpuUsPerReq: 250, redisCpuUsPerReq: 14, redisCoreShare: 0.07 },
    ];
    const report = scaleReport(results);
    // 0.7 s of Redis CPU per second at 14 µs per request: 50,000 requests/s per primary; a gateway
    // core at 250 µs per request serves 4,000: 12.5 instances per primary.
    const row = (primaries: number): string[] =>
      (report.split('\n').find((line) => new RegExp(`^\\s*${primaries}\\s{2,}`).test(line) && line.includes('0000')) as string).trim().split(/\s+/);
    expect(row(1)).toEqual(['1', '50000', '12.5']);
    expect(row(3)).toEqual(['3', '150000', '37.5']);
    expect(report).toContain('gateway 250.0 µs/req: 4000 req/s per gateway core');
  });
});
