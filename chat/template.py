"""The Llama 2-Chat format as a Hugging Face chat template (transformers apply_chat_template, TGI, vLLM).

It renders the strings of Meta's reference code (CHAT_FORMAT.md): each completed turn is
"<s>[INST] {user} [/INST] {answer} </s>", a leading system message is folded into the first user message
as "<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}", and contents are stripped. Unlike the template shipped with
meta-llama/Llama-2-7b-chat-hf it raises on every dialog chat/dialog.py rejects (role order, a system
message after the first position, empty contents, the special tags) and on add_generation_prompt after an
assistant message. Each answer and its EOS sit in a {% generation %} block, so
``return_assistant_tokens_mask=True`` marks exactly the tokens chat/format.py gives a label.

A string template cannot make every id equal to the segment-wise encoding of chat/format.py; literal
"<s>"/"</s>" inside a message become BOS/EOS ids once tokenized. tests/test_chat_template.py measures this.
"""

LLAMA2_CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system_message = messages[0]['content'] -%}"
    "{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system_message = none -%}"
    "{%- set turns = messages -%}"
    "{%- endif -%}"
    "{%- if not turns -%}"
    "{{- raise_exception('The dialog needs at least one user message.') -}}"
    "{%- endif -%}"
    "{%- set offset = messages | length - turns | length -%}"
    "{%- for message in messages -%}"
    "{%- set index = loop.index0 -%}"
    "{%- if message['content'] is not string -%}"
    "{{- raise_exception('Message ' ~ index ~ ': content must be a string.') -}}"
    "{%- endif -%}"
    "{%- for tag in ['[INST]', '[/INST]', '<<SYS>>', '<</SYS>>'] -%}"
    "{%- if tag in message['content'] -%}"
    "{{- raise_exception('Message ' ~ index ~ ' contains the special tag ' ~ tag ~ '.') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endfor -%}"
    "{%- for message in turns -%}"
    "{%- set expected_role = 'user' if loop.index0 % 2 == 0 else 'assistant' -%}"
    "{%- if message['role'] != expected_role -%}"
    "{{- raise_exception('Message ' ~ (loop.index0 + offset) ~ ': expected role ' ~ expected_role ~ ', got ' "
    "~ message['role'] ~ ' (roles must be: optional system, then user/assistant alternating).') -}}"
    "{%- endif -%}"
    "{%- if message['content'] | trim == '' -%}"
    "{{- raise_exception('Message ' ~ (loop.index0 + offset) ~ ' (' ~ message['role'] ~ '): empty content.') -}}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- set content = message['content'] -%}"
    "{%- if loop.first and system_message is not none -%}"
    "{%- set content = '<<SYS>>\\n' ~ system_message ~ '\\n<</SYS>>\\n\\n' ~ content -%}"
    "{%- endif -%}"
    "{{- bos_token ~ '[INST] ' ~ (content | trim) ~ ' [/INST]' -}}"
    "{%- else -%}"
    "{%- generation -%}"
    "{{- ' ' ~ (message['content'] | trim) ~ ' ' ~ eos_token -}}"
    "{%- endgeneration -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt and turns[-1]['role'] == 'assistant' -%}"
    "{{- raise_exception('add_generation_prompt needs a dialog that ends with a user message.') -}}"
    "{%- endif -%}"
)
