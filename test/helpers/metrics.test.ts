// The metrics page parser, one form of the Prometheus text and OpenMetrics grammars per test, then
// pages written by a real producer (prom-client, in both formats) read back.
import { Counter, Histogram, Registry, type RegistryContentType } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { findSamples, hasFamily, parseMetrics, sumSamples } from '../../helpers/metrics.js';

const one = (text: string) => {
  const page = parseMetrics(text);
  expect(page.samples, text).toHaveLength(1);
  return page.samples[0]!;
};

describe('parseMetrics: samples', () => {
  it('reads a bare sample and a labelled one', () => {
    const page = parseMetrics('up 1\nhttp_requests_total{method="GET",code="200"} 1027\n');
    expect(page.samples).toEqual([
      { name: 'up', labels: {}, value: 1 },
      { name: 'http_requests_total', labels: { method: 'GET', code: '200' }, value: 1027 },
    ]);
    expect(page.skipped).toBe(0);
  });

  it('allows blanks around tokens, tabs, a trailing comma and no blank after the label set', () => {
    expect(one('m { a = "1" ,\tb="2", }\t3')).toEqual({ name: 'm', labels: { a: '1', b: '2' }, value: 3 });
    expect(one('m{a="1"}4')).toEqual({ name: 'm', labels: { a: '1' }, value: 4 });
    expect(one('m{} 5')).toEqual({ name: 'm', labels: {}, value: 5 });
  });

  it('reads NaN, +Inf, -Inf (any case, as Go parses them) and exponent notation', () => {
    const page = parseMetrics('a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\nf 1.5e3\ng -0.25\nh .5\ni 7.\n');
    const v = Object.fromEntries(page.samples.map((s) => [s.name, s.value]));
    expect(v.a).toBeNaN();
    expect(v.e).toBeNaN();
    expect([v.b, v.c, v.d]).toEqual([Infinity, -Infinity, Infinity]);
    expect([v.f, v.g, v.h, v.i]).toEqual([1500, -0.25, 0.5, 7]);
    expect(page.skipped).toBe(0);
  });

  it('keeps +Inf as a label value (histogram le) without treating it as a number', () => {
    expect(one('req_bucket{le="+Inf"} 12').labels).toEqual({ le: '+Inf' });
  });

  it('reads a Prometheus timestamp as milliseconds', () => {
    const s = one('rpc_duration_seconds_count 2693 1395066363000');
    expect(s).toEqual({ name: 'rpc_duration_seconds_count', labels: {}, value: 2693, timestampMs: 1395066363000 });
  });

  it('reads an OpenMetrics timestamp (seconds, fractional) as milliseconds', () => {
    const page = parseMetrics('# TYPE a gauge\na 1 1520879607.789\n# EOF\n');
    expect(page.format).toBe('openmetrics');
    expect(page.samples[0]!.timestampMs).toBeCloseTo(1520879607789, 0);
  });
});

describe('parseMetrics: label value escapes', () => {
  it('unescapes \\\\, \\" and \\n', () => {
    expect(one('m{path="C:\\\\dir\\\\file",q="say \\"hi\\"",t="line1\\nline2"} 1').labels).toEqual({
      path: 'C:\\dir\\file',
      q: 'say "hi"',
      t: 'line1\nline2',
    });
  });

  it('keeps braces, commas, # and = inside a quoted value', () => {
    expect(one('m{route="/a/{id},x",frag="#top",eq="a=b"} 1').labels).toEqual({ route: '/a/{id},x', frag: '#top', eq: 'a=b' });
  });

  it('keeps UTF-8 in values', () => {
    expect(one('m{city="Zürich ☃"} 1').labels).toEqual({ city: 'Zürich ☃' });
  });

  it('rejects an unknown escape, an unterminated value, a duplicate label; the rest of the page is still read', () => {
    const page = parseMetrics('bad{a="x\\q"} 1\nbad{a="open} 1\nbad{a="1",a="2"} 1\nok 2\n');
    expect(page.samples).toEqual([{ name: 'ok', labels: {}, value: 2 }]);
    expect(page.skipped).toBe(3);
  });
});

describe('parseMetrics: OpenMetrics exemplars', () => {
  it('reads an exemplar as an exemplar, not as labels (the line from issue 20)', () => {
    const s = one('d{x="1"} 2 # {trace_id="abc"} 1.0');
    expect(s).toEqual({ name: 'd', labels: { x: '1' }, value: 2, exemplar: { labels: { trace_id: 'abc' }, value: 1 } });
  });

  it('reads an exemplar with its timestamp (seconds → ms), after a sample timestamp, and with no labels', () => {
    expect(one('c_total 7 # {trace_id="t1",span_id="s1"} 0.5 1520879607.789').exemplar).toEqual({
      labels: { trace_id: 't1', span_id: 's1' },
      value: 0.5,
      timestampMs: 1520879607789,
    });
    const withTs = parseMetrics('h_bucket{le="0.1"} 8 1520879607.000 # {trace_id="z"} 0.05\n# EOF\n').samples[0]!;
    expect(withTs).toMatchObject({ value: 8, timestampMs: 1520879607000, exemplar: { labels: { trace_id: 'z' }, value: 0.05 } });
    expect(one('c_total 1 # {} 1').exemplar).toEqual({ labels: {}, value: 1 });
  });

  it('does not count exemplar values into the sample sums', () => {
    const page = parseMetrics('r_total{a="1"} 2 # {trace_id="x"} 100\nr_total{a="2"} 3\n');
    expect(sumSamples(page, 'r_total')).toBe(5);
    expect(findSamples(page, 'r_total', { trace_id: 'x' })).toEqual([]);
  });

  it('rejects a malformed exemplar (missing value, no label set)', () => {
    const page = parseMetrics('a 1 # {trace_id="x"}\nb 1 # 2\nc 1 #\n');
    expect(page.samples).toEqual([]);
    expect(page.skipped).toBe(3);
  });
});

describe('parseMetrics: comments, HELP, TYPE and # EOF', () => {
  it('unescapes HELP text (\\\\ and \\n; \\" from OpenMetrics) and keeps other backslashes', () => {
    const page = parseMetrics(
      ['# HELP a Path like C:\\\\tmp\\nsecond line', '# HELP b Says \\"hi\\"', '# HELP c A \\d regex', '# HELP d', 'a 1', 'b 1', 'c 1', 'd 1'].join('\n'),
    );
    expect(page.help.get('a')).toBe('Path like C:\\tmp\nsecond line');
    expect(page.help.get('b')).toBe('Says "hi"');
    expect(page.help.get('c')).toBe('A \\d regex');
    expect(page.help.get('d')).toBe('');
  });

  it('records TYPE (all OpenMetrics types) and ignores UNIT and plain comments', () => {
    const page = parseMetrics('# TYPE a counter\n# TYPE g gaugehistogram\n# TYPE s stateset\n# UNIT a seconds\n# just a comment\n#no space either\na_total 1\n');
    expect([...page.types]).toEqual([
      ['a', 'counter'],
      ['g', 'gaugehistogram'],
      ['s', 'stateset'],
    ]);
    expect(page.skipped).toBe(0);
  });

  it('stops at # EOF: the page is OpenMetrics and anything after it is ignored and counted', () => {
    const page = parseMetrics('a 1\n# EOF\nb 2\n');
    expect(page.format).toBe('openmetrics');
    expect(page.samples.map((s) => s.name)).toEqual(['a']);
    expect(page.skipped).toBe(1);
    expect(parseMetrics('a 1\n').format).toBe('prometheus');
  });

  it('reads CRLF line ends', () => {
    const page = parseMetrics('# TYPE a gauge\r\na{x="1"} 1\r\n# EOF\r\n');
    expect(page.samples).toEqual([{ name: 'a', labels: { x: '1' }, value: 1 }]);
    expect(page.format).toBe('openmetrics');
  });
});

describe('parseMetrics: quoted (UTF-8) names', () => {
  it('reads a metric name inside the braces and quoted label names', () => {
    expect(one('{"http.server.duration","service.name"="api"} 3')).toEqual({ name: 'http.server.duration', labels: { 'service.name': 'api' }, value: 3 });
    expect(one('{"only.name"} 1')).toEqual({ name: 'only.name', labels: {}, value: 1 });
    const page = parseMetrics('# TYPE "http.server.duration" histogram\n# HELP "http.server.duration" Time.\n');
    expect(page.types.get('http.server.duration')).toBe('histogram');
    expect(page.help.get('http.server.duration')).toBe('Time.');
  });

  it('rejects a second name, or a quoted name after the metric name', () => {
    const page = parseMetrics('{"a","b"} 1\nm{"n"} 1\n{} 1\n');
    expect(page.samples).toEqual([]);
    expect(page.skipped).toBe(3);
  });
});

describe('parseMetrics: malformed lines', () => {
  it('skips what is not a sample and reads the rest', () => {
    const page = parseMetrics(['1abc 1', 'no_value', 'm{a=1} 1', 'm 1 2 3', 'm one', 'm 1 notatime', 'good 1'].join('\n'));
    expect(page.samples).toEqual([{ name: 'good', labels: {}, value: 1 }]);
    expect(page.skipped).toBe(6);
  });
});

describe('parseMetrics on pages a real client library writes', () => {
  async function registry(format: 'prometheus' | 'openmetrics') {
    const reg = new Registry<RegistryContentType>();
    const exemplars = format === 'openmetrics';
    if (exemplars) reg.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    // prom-client types exemplar label names as the metric's own label names; list both.
    const c = new Counter({ name: 'jobs_received', help: 'Jobs received.\nPer "topic", in C:\\queue', labelNames: ['topic', 'trace_id'], registers: [reg], enableExemplars: exemplars });
    const h = new Histogram({ name: 'step_seconds', help: 'Step time.', labelNames: ['step', 'trace_id'], buckets: [0.1, 1], registers: [reg], enableExemplars: exemplars });
    if (exemplars) {
      c.inc({ labels: { topic: 'job.de"fault' }, value: 3, exemplarLabels: { trace_id: 'abc' } });
      h.observe({ labels: { step: 'a\\b' }, value: 0.5, exemplarLabels: { trace_id: 'def' } });
    } else {
      c.inc({ topic: 'job.de"fault' }, 3);
      h.observe({ step: 'a\\b' }, 0.5);
    }
    return reg.metrics();
  }

  it('Prometheus text (prom-client): families, escapes, histogram buckets', async () => {
    const page = parseMetrics(await registry('prometheus'));
    expect(page.skipped).toBe(0);
    expect(page.format).toBe('prometheus');
    expect(page.help.get('jobs_received')).toBe('Jobs received.\nPer "topic", in C:\\queue');
    expect(sumSamples(page, 'jobs_received', { topic: 'job.de"fault' })).toBe(3);
    expect(findSamples(page, 'step_seconds_bucket', { step: 'a\\b', le: '+Inf' })[0]?.value).toBe(1);
    expect(hasFamily(page, 'step_seconds')).toBe(true);
  });

  it('OpenMetrics (prom-client): _total counters, exemplars kept apart from labels, # EOF', async () => {
    const text = await registry('openmetrics');
    expect(text).toContain('# {trace_id="abc"}');
    const page = parseMetrics(text);
    expect(page.skipped).toBe(0);
    expect(page.format).toBe('openmetrics');
    const [counter] = findSamples(page, 'jobs_received_total', { topic: 'job.de"fault' });
    expect(counter).toMatchObject({ labels: { topic: 'job.de"fault' }, value: 3, exemplar: { labels: { trace_id: 'abc' }, value: 3 } });
    const withExemplar = findSamples(page, 'step_seconds_bucket', { step: 'a\\b' }).filter((s) => s.exemplar);
    expect(withExemplar.map((s) => s.exemplar!.labels)).toEqual([{ trace_id: 'def' }]);
    expect(withExemplar[0]!.labels).not.toHaveProperty('trace_id');
    expect(hasFamily(page, 'jobs_received')).toBe(true);
  });
});
