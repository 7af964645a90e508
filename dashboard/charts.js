// Rate charts on uPlot (vendor/uplot, loaded as a classic script: global uPlot).
import { fmtBps, fmtBpsAxis, fmtCap, fmtTime, fmtTimeHM, fmtDay, fmtDateTime, t } from './i18n.js';
import { zoneWallDate } from './format.js';

export const COLORS = { in: '#38bdf8', out: '#f472b6', alloc: '#fbbf24' };
const AXIS = '#c7d2e3';
const GRID = 'rgba(148, 163, 184, 0.14)';
const FONT = '14px "DejaVu Sans", "Liberation Sans", system-ui, sans-serif';

function fill(color, alpha = 0.16) {
  // hex → a translucent fill (16 % by default)
  const n = parseInt(color.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

const H = 3600;
const D = 24 * H;
// Tick steps in seconds, uPlot's own list. Past 36 hours only whole days (and
// months, years): ticks fall on the NOC's midnights and every label names a
// different day, where 12-hour steps labelled each day twice.
const TIME_INCRS = [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, H, 2 * H, 3 * H, 4 * H, 6 * H, 8 * H, 12 * H];
const DAY_INCRS = [D, 2 * D, 3 * D, 4 * D, 5 * D, 7 * D, 14 * D, 30 * D, 60 * D, 90 * D, 120 * D, 180 * D, 365 * D];
const MULTI_DAY = 36 * H;

/** Tick steps for an x range: clock steps up to 36 h, whole days beyond. */
export function xIncrs(min, max) {
  return max - min > MULTI_DAY ? DAY_INCRS : TIME_INCRS.concat(DAY_INCRS);
}

/**
 * A two-series (in/out bps) chart; with opts.peaks, each direction's
 * highest one-second rate per step beside its average (a lighter dashed line).
 * opts: height, live (x range = last `span` seconds), span, alloc() → {down, up}
 * (the allocation in force now: one line), or `setAllocRuns` for history
 * (the allocation as it was over the range: a stepped line per direction).
 */
export class RateChart {
  constructor(el, opts) {
    this.el = el;
    this.opts = opts;
    this.data = [[], [], []];
    const span = opts.span;
    const xValues = (u, splits) => {
      const range = u.scales.x.max - u.scales.x.min;
      const labels = splits.map((s) => {
        const ms = s * 1000;
        if (range <= 2 * 3600) return range <= 600 ? fmtTime(ms) : fmtTimeHM(ms);
        if (range <= MULTI_DAY) return fmtTimeHM(ms);
        return fmtDay(ms);
      });
      el.dataset.xTicks = labels.join(' | '); // what the axis says, for tests
      return labels;
    };
    const self = this;
    const peak = (color, label) => ({
      label, stroke: fill(color, 0.75), width: 1.25, dash: [5, 4], spanGaps: false,
      points: { show: false }, value: (u, v) => (v == null ? '—' : fmtBps(v)),
    });
    this.data = opts.peaks ? [[], [], [], [], []] : [[], [], []];
    this.u = new uPlot({
      width: Math.max(200, el.clientWidth),
      height: opts.height,
      tzDate: zoneWallDate, // ticks on the NOC's hours and midnights, not the browser's
      padding: [14, 16, 0, 4],
      // opts.onSelect(from, to): a drag across the chart picks that range (the page zooms by loading it).
      cursor: { drag: { x: !!opts.onSelect, y: false, setScale: false }, points: { size: 8 } },
      legend: { show: true, live: true },
      scales: {
        x: {
          time: true,
          range: opts.live ? (u, min, max) => [max - span, max] : undefined,
        },
        y: {
          range: (u, min, max) => {
            // Usage against the allocation: the allocation lines are always
            // in view, however far below them the traffic stays.
            let top = Math.max(max || 0, 1000);
            const a = self.opts.alloc?.();
            if (a) top = Math.max(top, a.down || 0, a.up || 0);
            for (const r of self.runs || []) top = Math.max(top, r.down || 0, r.up || 0);
            return [0, top * 1.12];
          },
        },
      },
      axes: [
        {
          stroke: AXIS, font: FONT, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, values: xValues, space: 110,
          incrs: (u, i, min, max) => xIncrs(min, max),
        },
        {
          stroke: AXIS, font: FONT, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 },
          values: (u, splits) => splits.map(fmtBpsAxis), size: 96, space: 44,
        },
      ],
      series: [
        { label: t('chart.time'), value: (u, v) => (v == null ? '—' : fmtDateTime(v * 1000)) },
        { label: `↓ ${t('dir.in')}`, stroke: COLORS.in, width: 2, fill: fill(COLORS.in), spanGaps: true, points: { show: false }, value: (u, v) => (v == null ? '—' : fmtBps(v)) },
        { label: `↑ ${t('dir.out')}`, stroke: COLORS.out, width: 2, fill: fill(COLORS.out), spanGaps: true, points: { show: false }, value: (u, v) => (v == null ? '—' : fmtBps(v)) },
      ].concat(opts.peaks ? [peak(COLORS.in, `↓ ${t('chart.peakIn')}`), peak(COLORS.out, `↑ ${t('chart.peakOut')}`)] : []),
      hooks: {
        draw: [(u) => self.drawAlloc(u)],
        setSelect: [(u) => self.selected(u)],
      },
    }, this.data, el);
    this.ro = new ResizeObserver(() => {
      const w = Math.max(200, this.el.clientWidth);
      if (w !== this.u.width) this.u.setSize({ width: w, height: this.opts.height });
    });
    this.ro.observe(el);
  }

  selected(u) {
    const { left, width } = u.select;
    if (!this.opts.onSelect || width < 2) return;
    const from = Math.floor(u.posToVal(left, 'x'));
    const to = Math.ceil(u.posToVal(left + width, 'x'));
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (to > from) this.opts.onSelect(from, to);
  }

  /** runs: [{x (Unix s), down, up}] — the allocation from each change on. */
  setAllocRuns(runs) {
    this.runs = runs;
    this.el.dataset.allocRuns = String(runs.length);
  }

  drawAlloc(u) {
    if (this.runs?.length) { this.drawRuns(u); return; }
    const a = this.opts.alloc?.();
    if (!a) return;
    const ctx = u.ctx;
    const lines = [[a.down, `${t('agency.allocLine')} ↓ ${fmtCap(a.down)}`], [a.up, `${t('agency.allocLine')} ↑ ${fmtCap(a.up)}`]];
    ctx.save();
    ctx.setLineDash([8, 6]);
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.strokeStyle = COLORS.alloc;
    ctx.fillStyle = COLORS.alloc;
    ctx.font = `${13 * devicePixelRatio}px "DejaVu Sans", sans-serif`;
    ctx.textAlign = 'right';
    for (const [v, label] of lines) {
      if (!v || v > u.scales.y.max) continue;
      const y = Math.round(u.valToPos(v, 'y', true));
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      ctx.fillText(label, u.bbox.left + u.bbox.width - 6 * devicePixelRatio, y - 5 * devicePixelRatio);
    }
    ctx.restore();
  }

  drawRuns(u) {
    const ctx = u.ctx;
    const xmax = u.scales.x.max;
    ctx.save();
    ctx.setLineDash([8, 6]);
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.font = `${13 * devicePixelRatio}px "DejaVu Sans", sans-serif`;
    ctx.textAlign = 'right';
    for (const [key, color] of [['down', COLORS.alloc], ['up', COLORS.alloc]]) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      let lastY = null;
      const right = u.bbox.left + u.bbox.width;
      this.runs.forEach((r, i) => {
        const last = i + 1 === this.runs.length;
        // The run in force now reaches the plot's right edge (the newest,
        // unfinished step included) and is labelled even when it began
        // after the last whole step.
        const x0 = Math.min(Math.max(r.x, u.scales.x.min), xmax);
        const x1 = last ? xmax : this.runs[i + 1].x;
        if ((!last && x1 <= x0) || !r[key]) { lastY = null; return; }
        const px0 = u.valToPos(x0, 'x', true);
        const px1 = last ? right : u.valToPos(Math.min(x1, xmax), 'x', true);
        const y = Math.round(u.valToPos(r[key], 'y', true));
        if (lastY == null) ctx.moveTo(px0, y); else ctx.lineTo(px0, y); // the step
        ctx.lineTo(px1, y);
        lastY = y;
      });
      ctx.stroke();
      const last = this.runs[this.runs.length - 1];
      if (last?.[key] && lastY != null) {
        ctx.fillText(`${t('agency.allocLine')} ${key === 'down' ? '↓' : '↑'} ${fmtCap(last[key])}`,
          u.bbox.left + u.bbox.width - 6 * devicePixelRatio, lastY - 5 * devicePixelRatio);
      }
    }
    ctx.restore();
  }

  /** xs: Unix seconds; ins/outs (and with opts.peaks peakIns/peakOuts): bps (null = unknown). */
  setData(xs, ins, outs, peakIns, peakOuts) {
    const none = () => xs.map(() => null);
    this.data = this.opts.peaks ? [xs, ins, outs, peakIns || none(), peakOuts || none()] : [xs, ins, outs];
    this.u.setData(this.data);
    this.el.dataset.points = String(xs.length);
    // Without a hovering cursor the legend shows the newest values.
    if (xs.length && !(this.u.cursor.left >= 0)) this.u.setLegend({ idx: xs.length - 1 });
  }

  destroy() {
    this.ro.disconnect();
    this.u.destroy();
  }
}
