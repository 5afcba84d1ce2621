import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const MIN_SPAN_SECONDS = 300;

export interface ChartSeries {
  label: string;
  values: Array<number | null>;
  color: string;
}

/** A small time chart (uPlot): seconds since the epoch on x, one or more series on y. Sized to its container. */
export function Chart({ title, times, series }: { title: string; times: number[]; series: ChartSeries[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current!;
    const make = () => {
      plot.current?.destroy();
      plot.current = new uPlot(
        {
          width: Math.max(200, el.clientWidth),
          height: 180,
          legend: { show: true },
          // At least the last five minutes on x, so a few samples do not stretch over years.
          scales: { x: { time: true, range: (_u, min, max) => [Math.min(min, max - MIN_SPAN_SECONDS), max] }, y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max * 1.1)] } },
          series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: true }))],
          axes: [{}, { size: 48 }],
        },
        [times, ...series.map((s) => s.values)],
        el,
      );
    };
    make();
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The series set is fixed per chart; new points go through setData below.
  }, [series.length]);

  useEffect(() => {
    plot.current?.setData([times, ...series.map((s) => s.values)]);
  }, [times, series]);

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${series.map((s) => `${s.label} ${s.values.at(-1) ?? "no data"}`).join(", ")}`} />
    </figure>
  );
}
