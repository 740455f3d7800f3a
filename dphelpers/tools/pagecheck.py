"""The reader-level checks of :mod:`dphelpers.tools.bookcheck` on a rendered page, in a browser.

:func:`page_problems` runs in a playwright page that has finished loading (MathJax and plotly
drawn; see ``tests/test_book.py``): :data:`PAGE_SCRIPT` opens every hidden-input toggle and
measures the page (too-wide elements, overlapping or clipped plotly text, MathJax errors,
progress elements), then the page's text goes through the same text checks as a notebook
(``raw-table``, ``says``, ``progress``, ``missing-file``, ``snake-header``), and a screenshot of
each 3D scene shows whether ink touches its edge.  The checks by name: :data:`~dphelpers.tools.
bookcheck.CHECKS`.
"""
from __future__ import annotations

import io
import os

from .bookcheck import (_SNAKE, _TEX, REPO, _line_with, _shorten, forbidden_words, missing_files,
                        raw_table_lines, tqdm_lines)

#: a 3D scene's border strip (px) that must hold no ink (luminance below _INK)
_EDGE, _INK = 2, 140

__all__ = ["page_problems", "PAGE_SCRIPT"]


#: run in the page: open every toggle (hidden inputs), then measure; see :func:`page_problems`
PAGE_SCRIPT = r"""
() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden, .toggle-details__summary').forEach(
    e => e.classList.remove('toggle-hidden'));
  const main = document.querySelector('main') || document.body;
  const col = document.querySelector('article.bd-article') || main.querySelector('article') || main;
  const shown = e => e.getClientRects().length > 0;
  const short = (s, n = 80) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n);
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
    (typeof e.className === 'string' && e.className.trim() ?
     '.' + e.className.trim().split(/\s+/).slice(0, 2).join('.') : '');
  const outputs = Array.from(main.querySelectorAll('.cell_output')).map(e => e.innerText);
  const wide = Array.from(main.querySelectorAll('pre'))
    .filter(p => p.clientWidth > 0 && p.scrollWidth > p.clientWidth + 1)
    .map(p => ({scroll: p.scrollWidth, client: p.clientWidth, text: p.innerText.slice(0, 80)}));
  // visible text nodes: prose (for raw TeX) and everything but code input (for file names)
  const prose = [], visible = [];
  const walk = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const p = n.parentElement;
    if (!p || !n.data.trim() || p.closest('script, style, noscript, template, mjx-assistive-mml')
        || !shown(p)) continue;
    if (!p.closest('.cell_input, .headerlink, mjx-container')) visible.push(n.data);
    if (!p.closest('mjx-container, .math, pre, code, kbd, samp, .cell_input, .highlight'))
      prose.push(n.data);
  }
  const merror = Array.from(main.querySelectorAll('mjx-merror')).map(
    e => e.getAttribute('data-mjx-error') || short(e.textContent));
  // elements wider than the column's content box, or sticking out of it (outermost only)
  const cb = col.getBoundingClientRect(), cs = getComputedStyle(col);
  const left = cb.left + parseFloat(cs.paddingLeft), right = cb.right - parseFloat(cs.paddingRight);
  const tooWide = [];
  col.querySelectorAll('figure, table, img, svg, canvas, iframe, video, pre, .plotly-graph-div, '
                       + '.jupyter-widgets, div.output').forEach(e => {
    const plot = e.closest('.plotly-graph-div, .js-plotly-plot');
    if (!shown(e) || (plot && plot !== e) || tooWide.some(w => w.el.contains(e))) return;
    const r = (plot && e.querySelector('.svg-container') || e).getBoundingClientRect();
    const out = Math.round(Math.max(r.right - right, left - r.left));
    if (r.width < 1 || (r.width <= right - left + 1 && out <= 1)) return;
    const text = plot ? (e.querySelector('.gtitle') || {}).textContent
                      : e.innerText || e.getAttribute('alt');
    tooWide.push({el: e, what: name(e), width: Math.round(r.width),
                  column: Math.round(right - left), out, text: short(text, 50)});
  });
  // plotly: text boxes drawn over each other or cut by the figure's edge; 3D scene canvases
  const overlaps = [], clipped = [], scenes = [];
  const allScenes = document.querySelectorAll('.js-plotly-plot .gl-container canvas');
  main.querySelectorAll('.js-plotly-plot').forEach((gd, k) => {
    const g = gd.getBoundingClientRect(), boxes = [];
    const add = (e, kind) => {
      const r = e.getBoundingClientRect();
      if (r.width > 0.5 && r.height > 0.5 && shown(e))
        boxes.push({kind, r, text: short(e.textContent, 40)});
    };
    gd.querySelectorAll('text.gtitle').forEach(e => add(e, 'title'));
    gd.querySelectorAll('g.legend').forEach(e => add(e.querySelector('rect.bg') || e, 'legend'));
    gd.querySelectorAll('text.annotation-text').forEach(e => add(e, 'annotation'));
    gd.querySelectorAll('text').forEach(e => {
      if (/^[xy]\d*title$/.test(e.getAttribute('class') || '')) add(e, 'axis title');
    });
    const title = short((gd.querySelector('text.gtitle') || {}).textContent || '', 40);
    for (let i = 0; i < boxes.length; i++) {
      const a = boxes[i].r;
      if (a.left < g.left - 1 || a.right > g.right + 1 || a.top < g.top - 1
          || a.bottom > g.bottom + 1)
        clipped.push({plot: k, title, kind: boxes[i].kind, text: boxes[i].text});
      for (let j = i + 1; j < boxes.length; j++) {
        const b = boxes[j].r;
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 1 && h > 1)
          overlaps.push({plot: k, title, a: boxes[i].kind + ' ' + JSON.stringify(boxes[i].text),
                         b: boxes[j].kind + ' ' + JSON.stringify(boxes[j].text),
                         w: Math.round(w), h: Math.round(h)});
      }
    }
    gd.querySelectorAll('.gl-container canvas').forEach(c => {
      if (shown(c) && c.width > 0)
        scenes.push({plot: k, title, index: Array.from(allScenes).indexOf(c)});
    });
  });
  const sel = s => Array.from(main.querySelectorAll(s)).filter(shown);
  return {outputs, wide, plots: main.querySelectorAll('.js-plotly-plot').length, prose, visible,
          merror, tooWide: tooWide.map(({el, ...w}) => w), overlaps, clipped, scenes,
          bars: sel('progress, .widget-progress, .progress-bar').map(name),
          stderr: sel('.output.stderr').map(e => short(e.innerText)),
          injected: sel('.tag_injected-parameters').map(e => short(e.innerText)),
          headers: sel('table').map(t => {
            const head = t.tHead || t.rows[0];
            return head ? Array.from(head.querySelectorAll('th')).map(h => h.innerText.trim()) : [];
          }).flat()};
}
"""


_SCENES = ".js-plotly-plot .gl-container canvas"


def _edge_ink(png: bytes) -> int:
    """Dark pixels in the border strip of a screenshot (of a 3D scene's canvas)."""
    import numpy as np
    from PIL import Image

    lum = np.asarray(Image.open(io.BytesIO(png)).convert("L")).astype(int)
    if min(lum.shape) <= 4 * _EDGE:
        return 0
    inner = np.zeros(lum.shape, bool)
    inner[_EDGE:-_EDGE, _EDGE:-_EDGE] = True
    return int(((lum < _INK) & ~inner).sum())


def page_problems(page, min_plots: int = 0, name: str | None = None,
                  root: str | os.PathLike = REPO) -> tuple[list[str], int]:
    """Problems a reader sees on a loaded playwright ``page``; also returns the number of drawn
    plotly figures.  Opens every hidden-input toggle first, so hidden code is measured too.

    Each finding reads ``"<name>: <check>: <what>"`` (name: the page's path, by default);
    file names are looked up in the repository at ``root``.
    """
    got = page.evaluate(PAGE_SCRIPT)
    if name is None:
        from urllib.parse import urlparse
        name = "/".join([p for p in urlparse(page.url).path.split("/") if p][-2:]) or page.url
    found: list[str] = []
    for k, text in enumerate(got["outputs"]):
        rows = raw_table_lines(text)
        if rows:
            found.append(f"raw-table: output {k}: raw Markdown table text: {_shorten(rows[0])}")
        found += [f"says: output {k}: says {w!r}: {_shorten(_line_with(text, w))}"
                  for w in forbidden_words(text)]
        found += [f"progress: output {k}: progress bar text: {_shorten(b)}"
                  for b in tqdm_lines(text)[:1]]
    found += [f"long-code: code block wider than its column ({w['scroll']} > {w['client']} px): "
              f"{_shorten(w['text'], 60)}" for w in got["wide"]]
    found += [f"math: MathJax error {e!r}" for e in got["merror"]]
    prose = "\n".join(got["prose"])
    found += [f"math: text says {_shorten(ln)!r}" for ln in prose.splitlines() if "Misplaced" in ln]
    found += [f"math: raw TeX {t!r} in the text" for t in dict.fromkeys(_TEX.findall(prose))]
    found += [f"too-wide: {w['what']} is {w['width']} px wide, the column {w['column']} px "
              f"(sticks out {w['out']} px): {w['text']!r}" for w in got["tooWide"]]
    found += [f"plot-overlap: figure {o['plot']} {o['title']!r}: {o['a']} overlaps {o['b']} "
              f"({o['w']}x{o['h']} px)" for o in got["overlaps"]]
    found += [f"plot-clipped: figure {c['plot']} {c['title']!r}: {c['kind']} {c['text']!r} "
              f"is cut by the figure's edge" for c in got["clipped"]]
    for s in got["scenes"]:
        ink = _edge_ink(page.locator(_SCENES).nth(s["index"]).screenshot())
        if ink:
            found.append(f"plot-clipped: figure {s['plot']} {s['title']!r}: 3D scene drawn up "
                         f"to its edge ({ink} dark px within {_EDGE} px of it: an axis title "
                         f"or the data is cut off)")
    found += [f"progress: progress bar element {b}" for b in got["bars"]]
    found += [f"stderr: stderr output {s!r}" for s in got["stderr"]]
    found += [f"injected-parameters: papermill's injected cell is shown: {s!r}"
              for s in got["injected"]]
    found += [f"missing-file: the page mentions {f!r}, which is not in the repository"
              for f in missing_files("\n".join(got["visible"]), root)]
    found += [f"snake-header: table header {h!r}" for h in got["headers"] if _SNAKE.fullmatch(h)]
    if got["plots"] < min_plots:
        found.append(f"plots: {got['plots']} plotly figures drawn, expected at least {min_plots}")
    return [f"{name}: {f}" for f in found], int(got["plots"])
