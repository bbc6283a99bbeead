// Block Kit as the page's HTML: header, section (mrkdwn text and fields), context,
// actions with buttons (primary, danger, confirm dialogs) and divider. A message is
// drawn from exactly the blocks jitbot sent to Slack.
(function (root) {
  'use strict';
  const M = root.Mrkdwn;

  function el(tag, cls, html) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (html != null) e.innerHTML = html;
    return e;
  }

  function textObject(t, ctx) {
    if (!t) return '';
    return t.type === 'mrkdwn' ? M.render(t.text, ctx) : M.escapeHtml(t.text || '');
  }

  function button(e, block, onAction) {
    const b = el('button', 'bk-button' + (e.style ? ' bk-' + e.style : ''));
    b.type = 'button';
    b.textContent = (e.text && e.text.text) || e.action_id;
    b.dataset.actionId = e.action_id || '';
    b.addEventListener('click', () =>
      onAction({
        action_id: e.action_id || '',
        value: e.value || '',
        block_id: block.block_id || '',
        confirm: e.confirm || null,
      }),
    );
    return b;
  }

  function block(b, ctx, onAction) {
    switch (b.type) {
      case 'header':
        return el('div', 'bk-header', textObject(b.text, ctx));
      case 'section': {
        const s = el('div', 'bk-section');
        if (b.text) s.appendChild(el('div', 'bk-text', textObject(b.text, ctx)));
        if (Array.isArray(b.fields)) {
          const grid = el('div', 'bk-fields');
          b.fields.forEach((f) => grid.appendChild(el('div', 'bk-field', textObject(f, ctx))));
          s.appendChild(grid);
        }
        return s;
      }
      case 'context': {
        const c = el('div', 'bk-context');
        (b.elements || []).forEach((e) => {
          if (e.type === 'mrkdwn' || e.type === 'plain_text') c.appendChild(el('span', null, textObject(e, ctx)));
        });
        return c;
      }
      case 'actions': {
        const a = el('div', 'bk-actions');
        (b.elements || []).forEach((e) => {
          if (e.type === 'button') a.appendChild(button(e, b, onAction));
        });
        return a;
      }
      case 'divider':
        return el('hr', 'bk-divider');
      default:
        return el('div', 'bk-unsupported', M.escapeHtml('(a ' + b.type + ' block, not drawn here)'));
    }
  }

  function time(iso) {
    return iso ? new Date(iso).toISOString().slice(11, 16) : '';
  }

  // One message: jitbot's name, the time, then its blocks (or its text when it has none).
  function message(msg, ctx, onAction) {
    const m = el('div', 'msg');
    m.dataset.ts = msg.ts;
    const meta = el('div', 'msg-meta');
    meta.innerHTML = '<b>jitbot</b> <span class="app">APP</span> <span class="when">' +
      time(msg.posted_at) + ' UTC</span>' + (msg.edited_at ? ' <span class="edited">(edited ' + time(msg.edited_at) + ')</span>' : '');
    m.appendChild(meta);
    const body = el('div', 'msg-body');
    if (Array.isArray(msg.blocks) && msg.blocks.length) {
      msg.blocks.forEach((b) => body.appendChild(block(b, ctx, onAction)));
    } else {
      body.appendChild(el('div', 'bk-text', M.render(msg.text, ctx)));
    }
    m.appendChild(body);
    return m;
  }

  root.BlockKit = { message };
})(this);
