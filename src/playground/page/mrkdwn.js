// Slack's mrkdwn as HTML: *bold*, _italic_, ~strike~, `code`, ```code blocks```,
// > quotes, <@U…> mentions as @name, <#C…> channels, <!here>, <url|links>.
// Slack escapes &, < and > in text as &amp; &lt; &gt;; a raw <…> is a control
// sequence. Everything that reaches the page is HTML-escaped here, once, so text a
// person typed can never become markup.
(function (root) {
  'use strict';

  function escapeHtml(s) {
    return String(s)
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&#39;');
  }

  // Slack's three entities back to characters (before escaping for HTML again).
  function decode(s) {
    return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  }

  function lookup(fn, id) {
    return (typeof fn === 'function' && fn(id)) || null;
  }

  // One <…> control sequence.
  function token(inner, ctx) {
    const bar = inner.indexOf('|');
    const target = bar < 0 ? inner : inner.slice(0, bar);
    const label = bar < 0 ? null : decode(inner.slice(bar + 1));
    if (target.startsWith('@')) {
      const id = target.slice(1);
      const name = label || lookup(ctx.userName, id) || id;
      return '<span class="mention" title="' + escapeHtml(id) + '">@' + escapeHtml(name) + '</span>';
    }
    if (target.startsWith('#')) {
      const id = target.slice(1);
      const name = label || lookup(ctx.channelName, id) || id;
      return '<span class="mention" title="' + escapeHtml(id) + '">#' + escapeHtml(name) + '</span>';
    }
    if (target.startsWith('!')) {
      const name = label || target.slice(1).split('^')[0];
      return '<span class="mention">@' + escapeHtml(name) + '</span>';
    }
    const url = decode(target);
    if (/^(https?:\/\/|mailto:)/i.test(url)) {
      return '<a href="' + escapeHtml(url) + '" target="_blank" rel="noopener noreferrer">' +
        escapeHtml(label || url) + '</a>';
    }
    return escapeHtml('<' + decode(inner) + '>');
  }

  // One line: code spans and control sequences are set aside first, so formatting
  // never reaches inside them.
  function inline(line, ctx) {
    const kept = [];
    const keep = (html) => '\u0000' + (kept.push(html) - 1) + '\u0000';
    let s = line.replace(/`([^`\n]+)`/g, (_, code) => keep('<code>' + escapeHtml(decode(code)) + '</code>'));
    s = s.replace(/<([^<>\n]+)>/g, (_, inner) => keep(token(inner, ctx)));
    s = escapeHtml(decode(s));
    s = s.replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?=[^\w*]|$)/g, '$1<b>$2</b>');
    s = s.replace(/(^|[^\w_])_(?=\S)([^_\n]*?\S)_(?=[^\w_]|$)/g, '$1<i>$2</i>');
    s = s.replace(/(^|[^\w~])~(?=\S)([^~\n]*?\S)~(?=[^\w~]|$)/g, '$1<s>$2</s>');
    return s.replace(/\u0000(\d+)\u0000/g, (_, i) => kept[Number(i)]);
  }

  // Lines, with runs of lines that start with > as one quote.
  function paragraphs(text, ctx) {
    const lines = text.split('\n');
    let out = '';
    let quote = [];
    const flush = () => {
      if (quote.length) {
        out += '<blockquote>' + quote.map((l) => inline(l, ctx)).join('<br>') + '</blockquote>';
        quote = [];
      }
    };
    lines.forEach((line, i) => {
      const q = /^(>|&gt;)/.exec(line);
      if (q) {
        quote.push(line.slice(q[0].length));
        return;
      }
      flush();
      out += inline(line, ctx);
      if (i < lines.length - 1) out += '<br>';
    });
    flush();
    return out;
  }

  function render(text, ctx) {
    const source = String(text == null ? '' : text).replace(/\u0000/g, '');
    const parts = source.split('```');
    let out = '';
    parts.forEach((part, i) => {
      const fenced = i % 2 === 1 && i < parts.length - 1;
      if (fenced) {
        const code = part.replace(/^\n/, '').replace(/\n$/, '');
        out += '<pre class="code">' + escapeHtml(decode(code)) + '</pre>';
      } else {
        // An unclosed fence stays literal text, as in Slack.
        out += paragraphs(i % 2 === 1 ? '```' + part : part, ctx || {});
      }
    });
    return out;
  }

  const api = { render, escapeHtml };
  if (typeof module === 'object' && module.exports) {
    module.exports = api;
  } else {
    root.Mrkdwn = api;
  }
})(this);
