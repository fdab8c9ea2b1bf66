// A Prometheus-like scraper in a child process (started with `node --import tsx`): GETs
// <url> every <interval-ms>, reads the whole body, and never overlaps its own scrapes.
//
//   scraper.ts <url> <interval-ms>
const [url, every] = process.argv.slice(2);
const interval = Number(every);
let next = performance.now();
for (;;) {
  try {
    await (await fetch(url!)).arrayBuffer();
  } catch (err) {
    console.error(String(err));
  }
  next += interval;
  const wait = next - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  else next = performance.now();
}
