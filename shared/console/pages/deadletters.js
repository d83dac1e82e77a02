// Dead letters: the jobs the worker gave up on; redrive (one or all) and delete.

import { command } from "../api.js";
import { badge, busy, confirmDialog, h, notice, replace, table, time } from "../ui.js";

export async function render(view) {
  const status = notice();
  const list = h("div", { id: "dead-letter-list" });
  const redriveAll = h("button", { type: "button", id: "redrive-all", className: "secondary" }, "Redrive all");

  const reload = async () => {
    const { data } = await command("deadletter.list", { limit: 200 });
    replace(list,
      data.partial ? h("p", { className: "muted" }, "More dead letters exist than are shown.") : null,
      table([
        ["Id", (d) => h("code", {}, d.id)],
        ["Kind", (d) => badge(d.kind, "muted")],
        ["Job", (d) => job(d)],
        ["Attempts", (d) => (d.attempts === null || d.attempts === undefined ? "—" : String(d.attempts))],
        ["Reason", (d) => d.reason || "—"],
        ["Dead since", (d) => time(d.deadAt)],
        ["Actions", (d) => h("div", { className: "actions" },
          h("button", { type: "button", className: "small", "aria-label": `Redrive ${d.id}`,
            onclick: (e) => busy(e.currentTarget, status, async () => {
              await command("deadletter.redrive", { id: d.id });
              status.ok(`Dead letter ${d.id} is back in the queue.`);
              await reload();
            }) }, "Redrive"),
          h("button", { type: "button", className: "small danger", "aria-label": `Delete ${d.id}`,
            onclick: async (e) => {
              const button = e.currentTarget;
              if (!(await confirmDialog(`Drop dead letter ${d.id} for good?`))) return;
              await busy(button, status, async () => {
                await command("deadletter.delete", { id: d.id });
                status.ok(`Dead letter ${d.id} was deleted.`);
                await reload();
              });
            } }, "Delete"))],
      ], data.deadLetters, { empty: "No dead letters. Nothing is stuck.", rowAttrs: (d) => ({ dataset: { deadLetter: d.id } }) }));
    redriveAll.hidden = data.deadLetters.length === 0;
  };
  redriveAll.addEventListener("click", async () => {
    if (!(await confirmDialog("Queue every dead letter again?", "Redrive all"))) return;
    await busy(redriveAll, status, async () => {
      let total = 0;
      for (;;) {
        const { data } = await command("deadletter.redrive");
        total += data.redriven;
        if (!data.more) break;
      }
      status.ok(`${total} dead letter(s) are back in the queue.`);
      await reload();
    });
  });
  replace(view,
    h("h1", {}, "Dead letters"),
    h("p", { className: "lead" }, "Jobs the worker gave up on. Redrive queues one again; to run a fixed pipeline on a failed event, replay the event."),
    h("div", { className: "toolbar" }, redriveAll),
    status, list);
  try {
    await reload();
  } catch (err) {
    status.show(err);
  }
}

function job(d) {
  if (d.kind === "pipeline") {
    return h("span", {}, h("code", {}, d.pipeline), " on ", h("a", { href: `#/events/${d.correlationId}` }, d.correlationId.slice(0, 8)));
  }
  if (d.kind === "delivery") return h("span", {}, "delivery ", h("code", {}, d.referenceId));
  return h("code", { className: "message" }, d.message || "");
}
