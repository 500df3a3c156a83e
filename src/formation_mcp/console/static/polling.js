// Reloading a page's data while it is shown: `load` now and then every `everyMs`, until the
// page's signal aborts; errors go to `report` (the API's message), success clears it.
export async function poll(signal, report, load, everyMs = 1000) {
  while (!signal.aborted) {
    try {
      await load();
      report("");
    } catch (error) {
      if (!signal.aborted) report(error.message);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
