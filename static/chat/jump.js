// "Jump to latest ↓": a reader who scrolls up while a reply streams is left where they are (the page follows
// the reply only from the bottom), and this button takes them back down.
//
// Nothing here runs per frame or grows with the reply: an IntersectionObserver says whether the sentinel at
// the transcript's end (#transcript-end) is in view, within the same slack that the page's own "at the bottom"
// test allows, and a MutationObserver on the log's one `aria-busy` attribute says whether a reply streams.

// The transcript's own slack (transcript.js isScrolledToBottom), so "at the bottom" means the same to both.
import { BOTTOM_SLACK_PX } from "./state.js";

function initJump() {
  const scroller = document.getElementById("messages");
  const log = document.getElementById("message-list");
  const end = document.getElementById("transcript-end");
  const button = document.getElementById("jump-latest");
  if (!scroller || !log || !end || !button) return;

  let atBottom = true;
  let streaming = false;

  // Shown once the reader is away from the bottom while a reply streams; it then stays, over the end of the
  // reply too, until the reader is back at the bottom, by the button or by scrolling.
  function update() {
    if (atBottom) button.hidden = true;
    else if (streaming) button.hidden = false;
  }

  new IntersectionObserver(
    (entries) => {
      atBottom = entries[entries.length - 1].isIntersecting;
      update();
    },
    { root: scroller, rootMargin: `0px 0px ${BOTTOM_SLACK_PX}px 0px` },
  ).observe(end);

  // transcript.js sets aria-busy on every render, so this runs per frame while a reply streams: it only compares.
  // When a reply starts, the observer above may not have reported the frame that started it yet (a send
  // scrolls to the bottom in that same frame), so the reader's place is measured then, once per reply.
  new MutationObserver(() => {
    const busy = log.getAttribute("aria-busy") === "true";
    if (busy && !streaming) {
      atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= BOTTOM_SLACK_PX;
    }
    streaming = busy;
    update();
  }).observe(log, { attributes: true, attributeFilter: ["aria-busy"] });

  button.addEventListener("click", () => {
    // Instant, not smooth: the page follows the reply from the next frame on only if it finds the reader at
    // the bottom then, and a smooth scroll would still be on its way.
    scroller.scrollTop = scroller.scrollHeight;
    button.hidden = true;
    log.removeAttribute("data-linked-message"); // and follows the end again (transcript.js)
    // The button is gone; the keyboard goes where the next message is written.
    document.getElementById("composer-input")?.focus({ preventScroll: true });
  });
}

initJump();
