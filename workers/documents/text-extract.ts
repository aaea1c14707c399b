/**
 * Plain text out of HTML and Markdown, written for indexing rather than display: what a reader would
 * see stays (headings, paragraphs, list items, link texts, alt texts), everything else goes (scripts,
 * styles, templates, comments, tags, link targets). Block elements become line breaks so sentences of
 * different blocks never run together.
 */
const DROPPED_ELEMENTS = ['script', 'style', 'noscript', 'template', 'svg', 'head', 'iframe', 'object'];
const BLOCK_TAGS =
  /^(p|div|br|hr|li|ul|ol|dl|dt|dd|h[1-6]|tr|td|th|table|thead|tbody|section|article|aside|header|footer|nav|main|blockquote|pre|figure|figcaption|form|title|address)$/i;

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', copy: '©', reg: '®', trade: '™', hellip: '…',
  mdash: '—', ndash: '–', lsquo: '‘', rsquo: '’', ldquo: '“', rdquo: '”', laquo: '«', raquo: '»', middot: '·',
  bull: '•', deg: '°', euro: '€', pound: '£', yen: '¥', cent: '¢', sect: '§', para: '¶', times: '×', divide: '÷',
  eacute: 'é', egrave: 'è', agrave: 'à', aacute: 'á', ccedil: 'ç', uuml: 'ü', ouml: 'ö', auml: 'ä', szlig: 'ß',
};

export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z][a-z0-9]*);/gi, (m, body: string) => {
    if (body[0] === '#') {
      const cp = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return Number.isFinite(cp) && cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? String.fromCodePoint(cp) : ' ';
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? m;
  });
}

export function htmlToText(html: string): string {
  let s = html.replace(/<!--[\s\S]*?(-->|$)/g, ' ').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, ' ');
  for (const tag of DROPPED_ELEMENTS) {
    // Content of these never reaches the text, closed or not (an unclosed <script> hides the rest, as in a browser).
    s = s.replace(new RegExp(`<${tag}\\b[^>]*>[\\s\\S]*?(</${tag}\\s*>|$)`, 'gi'), ' ');
  }
  s = s.replace(/<img\b[^>]*?\balt\s*=\s*("([^"]*)"|'([^']*)')[^>]*>/gi, (_m, _q, a: string | undefined, b: string | undefined) => ` ${a ?? b ?? ''} `);
  s = s.replace(/<\/?([a-z][a-z0-9-]*)\b[^>]*>/gi, (_m, name: string) => (BLOCK_TAGS.test(name) ? '\n' : ' '));
  s = s.replace(/<[^>]*>/g, ' ');
  return tidy(decodeEntities(s));
}

export function markdownToText(md: string): string {
  let s = md.replace(/\r\n?/g, '\n');
  s = s.replace(/^(```|~~~)[^\n]*$/gm, ''); // code fences (their content stays: it is text people search for)
  s = s.replace(/<!--[\s\S]*?-->/g, ' ');
  s = s.replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1'); // images: alt text
  s = s.replace(/\[([^\]]+)\]\([^)]*\)/g, '$1'); // links: their text
  s = s.replace(/^\s{0,3}\[[^\]]+\]:\s*\S+.*$/gm, ''); // reference definitions
  s = s.replace(/^\s{0,3}#{1,6}\s+/gm, ''); // heading markers
  s = s.replace(/^\s{0,3}(?:[-*_]\s*){3,}$/gm, ''); // rules
  s = s.replace(/^\s{0,3}>\s?/gm, ''); // quotes
  s = s.replace(/^(\s*)(?:[-*+]|\d+[.)])\s+/gm, '$1'); // list markers
  s = s.replace(/(\*\*|__)(.+?)\1/g, '$2').replace(/(^|[^\w*])[*_]([^*_\n]+)[*_](?=[^\w*]|$)/g, '$1$2'); // emphasis
  s = s.replace(/`([^`]+)`/g, '$1');
  s = s.replace(/^\s*\|?(?:\s*:?-{3,}:?\s*\|)+\s*:?-*:?\s*$/gm, ''); // table separator rows
  s = s.replace(/\|/g, ' ');
  s = s.replace(/<\/?[a-z][^>]*>/gi, ' ');
  return tidy(decodeEntities(s));
}

/** Collapses runs of spaces, keeps single line breaks between blocks, trims. */
export function tidy(s: string): string {
  return s
    .replace(/\u00a0/g, ' ')
    .replace(/[ \t\f\v]+/g, ' ')
    .replace(/ *\n */g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
