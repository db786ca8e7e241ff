// The finance charts (DESIGN §11): drawn with the vendored Chart.js from the
// figures the page already shows in its tables (a JSON block of integer fen),
// so without JavaScript nothing is lost but the drawing. Amounts stay integers
// until they are written as yuan: a float never decides a figure shown.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"];

function yuan(fen) {
  const sign = fen < 0 ? "-" : "";
  const absolute = Math.abs(fen);
  const whole = String(Math.trunc(absolute / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}¥${whole}.${String(absolute % 100).padStart(2, "0")}`;
}

function show(canvas) {
  canvas.parentElement.hidden = false;
  return canvas;
}

function options(stacked, horizontal = false) {
  const reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  const amountAxis = { stacked, beginAtZero: true, ticks: { callback: (value) => yuan(Number(value)) } };
  const categoryAxis = { stacked };
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: reduced ? false : undefined,
    indexAxis: horizontal ? "y" : "x",
    scales: horizontal ? { x: amountAxis, y: categoryAxis } : { x: categoryAxis, y: amountAxis },
    plugins: {
      tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${yuan(item.raw)}` } },
      legend: { position: "bottom" },
    },
  };
}

function draw(Chart, data) {
  const monthly = document.getElementById("chart-monthly");
  if (monthly && data.monthly.series.length) {
    new Chart(show(monthly), {
      type: "bar",
      data: {
        labels: data.monthly.months,
        datasets: data.monthly.series.map((series, index) => ({
          label: series.label, data: series.values, backgroundColor: PALETTE[index % PALETTE.length],
        })),
      },
      options: options(true),
    });
  }
  const flows = document.getElementById("chart-flows");
  if (flows && data.flows.values.length) {
    const chart = options(false, true);
    chart.plugins.legend.display = false;
    new Chart(show(flows), {
      type: "bar",
      data: {
        labels: data.flows.labels,
        datasets: [{ label: data.flows.series, data: data.flows.values, backgroundColor: PALETTE[0] }],
      },
      options: chart,
    });
  }
  for (const region of data.budget.regions) {
    const canvas = document.getElementById(`chart-budget-${region.code}`);
    if (!canvas || !region.years.length) continue;
    new Chart(show(canvas), {
      type: "bar",
      data: {
        labels: region.years,
        datasets: data.budget.series.map((series, index) => ({
          label: series.label, data: region.values[series.key], backgroundColor: PALETTE[(index + 2) % PALETTE.length],
        })),
      },
      options: options(false),
    });
  }
}

const block = document.getElementById("finance-chart-data");
if (block && window.Chart) {
  draw(window.Chart, JSON.parse(block.textContent));
}
