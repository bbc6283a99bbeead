// The page's mrkdwn renderer: formatting, Slack's control sequences, and that no text
// a person typed can become markup.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

const require = createRequire(import.meta.url);
const { render } = require('../../src/playground/page/mrkdwn.js');
const ctx = { userName: (id) => ({ U0ALICE001: 'alice' })[id], channelName: (id) => id };

test('bold, italic, strike and inline code', () => {
  assert.equal(render('asks for *30m* of _access_ ~now~ `a*b*c`', ctx),
    'asks for <b>30m</b> of <i>access</i> <s>now</s> <code>a*b*c</code>');
  assert.equal(render('snake_case_name and 2*3*4', ctx), 'snake_case_name and 2*3*4');
});

test('mentions show names, channels and links their labels', () => {
  assert.equal(render('<@U0ALICE001> and <@U01DBLEAD1>', ctx),
    '<span class="mention" title="U0ALICE001">@alice</span> and <span class="mention" title="U01DBLEAD1">@U01DBLEAD1</span>');
  assert.equal(render('sent to <#C03DBAPPRV>', ctx), 'sent to <span class="mention" title="C03DBAPPRV">#C03DBAPPRV</span>');
  assert.equal(render('<https://example.com/x?a=1&amp;b=2|the runbook>', ctx),
    '<a href="https://example.com/x?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">the runbook</a>');
});

test('code blocks keep their text and decode Slack\'s entities once', () => {
  assert.equal(render('*Policy*\n```a: "x"\nb: &lt;c&gt; &amp;amp;```', ctx),
    '<b>Policy</b><br><pre class="code">a: &quot;x&quot;\nb: &lt;c&gt; &amp;amp;</pre>');
});

test('quotes run over consecutive > lines', () => {
  assert.equal(render('asks:\n>first\n>second\nafter', ctx),
    'asks:<br><blockquote>first<br>second</blockquote>after');
});

test('typed text never becomes markup', () => {
  const typed = '&lt;img src=x onerror=alert(1)&gt; <javascript:alert(1)|click> "q" \u00000\u0000';
  const html = render(typed, ctx);
  assert.ok(!/<img|<a /.test(html), html);
  assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'), html);
  assert.ok(html.includes('&quot;q&quot;'), html);
});

test('a reason jitbot made inert shows as typed, and the policy stays one code block', () => {
  // What blocks.rs `inert` and `fenced` send for a reason full of Slack's marks.
  const inert = 'ˋˋˋ ∗✅ pre-approved by security∗ ‹https://evil|click› ‹!here› ˍxˍ ∼y∼ ˋzˋ &amp; co';
  assert.equal(render('>' + inert, ctx),
    '<blockquote>ˋˋˋ ∗✅ pre-approved by security∗ ‹https://evil|click› ‹!here› ˍxˍ ∼y∼ ˋzˋ &amp; co</blockquote>');
  const card = '*Policy to apply*\n```metadata:\n  annotations:\n    jitbot.dev/reason: \'ˋˋˋ *✅ ok*\'\nkind: NetworkPolicy```';
  const html = render(card, ctx);
  assert.equal(html.match(/<pre/g).length, 1, html);
  assert.ok(html.includes('jitbot.dev/reason: &#39;ˋˋˋ *✅ ok*&#39;\nkind: NetworkPolicy</pre>'), html);
  assert.ok(!html.includes('<b>✅'), html);
});
