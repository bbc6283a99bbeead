// Block Kit as the page's HTML: header, section (mrkdwn text, fields and a button
// accessory), context, actions (buttons, selects, radio buttons), divider, and in a
// view (a modal or the App Home) input blocks with plain_text_input, static_select
// (options or option_groups), external_select (options asked of jitbot as Slack asks
// with block_suggestion), radio_buttons and checkboxes. A message or view is drawn
// from exactly the blocks jitbot sent to Slack, and a view's inputs are read back as
// Slack's state.values.
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
        type: 'button',
        action_id: e.action_id || '',
        value: e.value || '',
        block_id: block.block_id || '',
        confirm: e.confirm || null,
      }),
    );
    return b;
  }

  const plain = (t) => (t && t.text) || '';
  // A chosen option as Slack reports it in state.values and actions.
  const chosen = (o) => (o ? { text: { type: 'plain_text', text: plain(o.text), emoji: true }, value: o.value } : null);

  // An option list's options, whether flat or in groups, each with its group label.
  function allOptions(e) {
    if (Array.isArray(e.option_groups)) {
      return e.option_groups.flatMap((g) => (g.options || []).map((o) => ({ ...o, group: plain(g.label) })));
    }
    return (e.options || []).map((o) => ({ ...o, group: null }));
  }

  // A static_select as a <select>, option groups as <optgroup>s.
  function staticSelect(e, onChange) {
    const s = el('select', 'bk-select');
    s.dataset.actionId = e.action_id || '';
    const options = allOptions(e);
    const none = el('option', null);
    none.value = '';
    none.textContent = plain(e.placeholder) || 'Select an item';
    s.appendChild(none);
    let group = null;
    let groupNode = null;
    options.forEach((o, i) => {
      const opt = el('option', null);
      opt.value = String(i);
      opt.textContent = plain(o.text);
      if (o.group !== null && o.group !== group) {
        group = o.group;
        groupNode = el('optgroup', null);
        groupNode.label = group;
        s.appendChild(groupNode);
      }
      (o.group !== null ? groupNode : s).appendChild(opt);
      if (e.initial_option && e.initial_option.value === o.value) s.value = String(i);
    });
    const read = () => (s.value === '' ? null : chosen(options[Number(s.value)]));
    s.addEventListener('change', () => onChange && onChange({ selected_option: read() }));
    return { node: s, read: () => ({ type: 'static_select', selected_option: read() }) };
  }

  // An external_select: a search box whose options jitbot gives (block_suggestion).
  function externalSelect(e, blockId, hooks, onChange) {
    const box = el('div', 'bk-external');
    const input = el('input', 'bk-search');
    input.type = 'search';
    input.placeholder = plain(e.placeholder) || 'Type to search';
    input.dataset.actionId = e.action_id || '';
    const list = el('div', 'bk-suggestions');
    const picked = el('div', 'bk-picked');
    let selected = e.initial_option ? chosen(e.initial_option) : null;
    const show = () => { picked.textContent = selected ? 'Selected: ' + plain(selected.text) : ''; };
    show();
    const min = e.min_query_length == null ? 3 : e.min_query_length;
    let asked = 0;
    input.addEventListener('input', async () => {
      const typed = input.value;
      list.innerHTML = '';
      if (typed.length < min || !hooks || !hooks.suggest) return;
      const n = ++asked;
      const answer = await hooks.suggest(blockId, e.action_id || '', typed);
      if (n !== asked) return;
      list.innerHTML = '';
      allOptions(answer || {}).forEach((o) => {
        const b = el('button', 'bk-suggestion');
        b.type = 'button';
        b.textContent = (o.group ? o.group + ' · ' : '') + plain(o.text);
        b.dataset.value = o.value;
        b.addEventListener('click', () => {
          selected = chosen(o);
          list.innerHTML = '';
          input.value = plain(o.text);
          show();
          if (onChange) onChange({ selected_option: selected });
        });
        list.appendChild(b);
      });
      if (!list.children.length) list.appendChild(el('div', 'empty', 'No matches'));
    });
    box.append(input, list, picked);
    return { node: box, read: () => ({ type: 'external_select', selected_option: selected }) };
  }

  let radios = 0;
  // radio_buttons or checkboxes: one input per option.
  function choices(e, kind, ctx, onChange) {
    const box = el('div', 'bk-choices');
    const name = 'bk-' + kind + '-' + (radios += 1);
    const options = e.options || [];
    const initial = kind === 'radio' ? [e.initial_option] : e.initial_options || [];
    const inputs = options.map((o, i) => {
      const label = el('label', 'bk-choice');
      const input = el('input', null);
      input.type = kind;
      input.name = name;
      input.value = String(i);
      input.checked = initial.some((x) => x && x.value === o.value);
      label.appendChild(input);
      label.appendChild(el('span', null, textObject(o.text, ctx)));
      if (o.description) label.appendChild(el('small', null, textObject(o.description, ctx)));
      box.appendChild(label);
      return input;
    });
    const picked = () => inputs.filter((i) => i.checked).map((i) => chosen(options[Number(i.value)]));
    const read = () => (kind === 'radio'
      ? { type: 'radio_buttons', selected_option: picked()[0] || null }
      : { type: 'checkboxes', selected_options: picked() });
    inputs.forEach((i) => i.addEventListener('change', () => {
      const r = read();
      if (onChange) onChange(kind === 'radio' ? { selected_option: r.selected_option } : { selected_options: r.selected_options });
    }));
    return { node: box, read };
  }

  function textInput(e) {
    const input = e.multiline ? el('textarea', 'bk-textarea') : el('input', 'bk-text-input');
    if (!e.multiline) input.type = 'text';
    input.dataset.actionId = e.action_id || '';
    if (e.placeholder) input.placeholder = plain(e.placeholder);
    if (e.initial_value) input.value = e.initial_value;
    if (e.max_length) input.maxLength = e.max_length;
    return { node: input, read: () => ({ type: 'plain_text_input', value: input.value === '' ? null : input.value }) };
  }

  // An interactive element as a control; `onChange(what)` is told of a change.
  function control(e, blockId, ctx, hooks, onChange) {
    switch (e.type) {
      case 'plain_text_input': return textInput(e);
      case 'static_select': return staticSelect(e, onChange);
      case 'external_select': return externalSelect(e, blockId, hooks, onChange);
      case 'radio_buttons': return choices(e, 'radio', ctx, onChange);
      case 'checkboxes': return choices(e, 'checkbox', ctx, onChange);
      default:
        return { node: el('div', 'bk-unsupported', M.escapeHtml('(a ' + e.type + ' element, not drawn here)')), read: null };
    }
  }

  // An action of an element, as Slack reports it in block_actions.
  function actionOf(e, blockId, what) {
    return { type: e.type, action_id: e.action_id || '', block_id: blockId, ...what };
  }

  function block(b, ctx, onAction, hooks, reads) {
    const blockId = b.block_id || '';
    // A select or radio button outside an input block sends its action at once.
    const element = (e) => {
      if (e.type === 'button') return button(e, b, onAction);
      const c = control(e, blockId, ctx, hooks, (what) => onAction(actionOf(e, blockId, what)));
      if (c.read && reads) reads.push([blockId, e.action_id || '', c.read]);
      return c.node;
    };
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
        if (b.accessory && b.accessory.type !== 'image') {
          s.classList.add('bk-with-accessory');
          const a = el('div', 'bk-accessory');
          a.appendChild(element(b.accessory));
          s.appendChild(a);
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
        (b.elements || []).forEach((e) => a.appendChild(element(e)));
        return a;
      }
      case 'input': {
        const box = el('div', 'bk-input');
        box.dataset.blockId = blockId;
        const label = el('label', 'bk-label', M.escapeHtml(plain(b.label)));
        if (b.optional) label.appendChild(el('span', 'bk-optional', ' (optional)'));
        box.appendChild(label);
        const e = b.element || {};
        // With dispatch_action a change is sent at once, as Slack does.
        const changed = b.dispatch_action ? (what) => onAction(actionOf(e, blockId, what)) : null;
        const c = control(e, blockId, ctx, hooks, changed);
        box.appendChild(c.node);
        if (c.read && reads) reads.push([blockId, e.action_id || '', c.read, !b.optional, e.min_length || 0]);
        if (b.hint) box.appendChild(el('div', 'bk-hint', textObject(b.hint, ctx)));
        box.appendChild(el('div', 'bk-error'));
        return box;
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

  // A view's blocks (a modal's or the App Home's). `onAction(action)` gets each
  // click or dispatched change as Slack reports it; `hooks.suggest(blockId,
  // actionId, typed)` answers an external_select's options. Returns the node,
  // `values()` (state.values as Slack sends them), `missing()` (required inputs left
  // empty, which Slack's client does not send) and `errors(map)`, which shows errors
  // under their blocks and clears the others.
  function view(v, ctx, onAction, hooks) {
    const body = el('div', 'bk-view');
    const reads = [];
    (v.blocks || []).forEach((b, i) => {
      const withId = b.block_id ? b : { ...b, block_id: 'b' + i };
      body.appendChild(block(withId, ctx, (a) => onAction({ ...a, block_id: a.block_id || withId.block_id }), hooks, reads));
    });
    function values() {
      const out = {};
      reads.forEach(([blockId, actionId, read]) => {
        out[blockId] = out[blockId] || {};
        out[blockId][actionId] = read();
      });
      return out;
    }
    // What Slack's client itself refuses to send: a required input left empty.
    function missing() {
      const out = {};
      reads.forEach(([blockId, , read, required, minLength]) => {
        const v = read();
        const empty = v.value == null && v.selected_option == null && !(v.selected_options && v.selected_options.length);
        if (required && empty) out[blockId] = 'Please complete this required field.';
        else if (v.value != null && v.value.length < minLength) out[blockId] = 'Please enter at least ' + minLength + ' characters.';
      });
      return out;
    }
    function errors(map) {
      body.querySelectorAll('.bk-input').forEach((box) => {
        const why = (map || {})[box.dataset.blockId];
        box.classList.toggle('bk-invalid', !!why);
        box.querySelector('.bk-error').textContent = why || '';
      });
    }
    return { node: body, values, missing, errors };
  }

  // `v` with what was entered in its previous version kept, as Slack keeps the
  // input of a block whose block_id and action_id stay the same across an update.
  function keep(v, values) {
    const blocks = (v.blocks || []).map((b) => {
      const e = b.element;
      const was = b.type === 'input' && e && ((values || {})[b.block_id] || {})[e.action_id];
      if (!was) return b;
      const kept = { ...e };
      if (was.value != null) kept.initial_value = was.value;
      if (was.selected_option) {
        const match = allOptions(e).find((o) => o.value === was.selected_option.value);
        if (match || e.type === 'external_select') kept.initial_option = match ? { text: match.text, value: match.value } : was.selected_option;
      }
      if (Array.isArray(was.selected_options)) {
        kept.initial_options = allOptions(e).filter((o) => was.selected_options.some((x) => x.value === o.value)).map((o) => ({ text: o.text, value: o.value, description: o.description }));
      }
      return { ...b, element: kept };
    });
    return { ...v, blocks };
  }

  // Blocks alone, as an ephemeral message shows them.
  function blocks(list, ctx, onAction) {
    const body = el('div', 'msg-body');
    list.forEach((b) => body.appendChild(block(b, ctx, onAction)));
    return body;
  }

  root.BlockKit = { message, view, blocks, keep };
})(this);
