// Numbers as the page writes them: token counts, dollars, seconds.

export const integerFormat = new Intl.NumberFormat();

export function formatCost(cost) {
  return "$" + Number(cost).toFixed(4);
}

export function formatDuration(milliseconds) {
  return (milliseconds / 1000).toFixed(1) + "s";
}
