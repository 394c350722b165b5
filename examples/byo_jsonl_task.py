"""Bring your own parallel task: JSON Lines of source/target prompts plus gold, then sweep + evaluate.

Each line: {"id", "lang", "source", "target", "gold", "kind": "choice"|"qa", "options": {label: word}}.
Measured (demo model already converted, loading and the perplexity pass included): 249 s on a shared
2-core CPU with a load average of about 4.7.
"""

import json

import xtl
from xtl import analysis

rows = [
    {"id": "capital", "lang": "en", "kind": "choice", "gold": "B", "options": {"A": "A", "B": "B", "C": "C"},
     "source": "Human: 下面哪个城市是日本的首都？\n选项：(A) 大阪 (B) 东京 (C) 京都\nAssistant: 我的答案是：",
     "target": "Human: Which of these cities is the capital of Japan?\nOptions: (A) Osaka (B) Tokyo (C) Kyoto\n"
               "Assistant: My answer is:"},
    {"id": "river", "lang": "en", "kind": "qa", "gold": "Yangtze",
     "source": "Human: 中国最长的河流是哪条？\nAssistant: 我的答案是：",
     "target": "Human: What is the longest river in China?\nAssistant: My answer is:"},
]
with open("my_task.jsonl", "w", encoding="utf-8") as f:
    f.write("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))

items = xtl.load_task("my_task.jsonl")
model = xtl.load_model("gemma-3-270m-q4km")
n = model.cfg.n_layers
df = xtl.sweep(model, items, site="mlp", src_layers=[0, n // 2, n - 1], tgt_layers=[0, n // 6],
               max_new_tokens=10)
ev = xtl.evaluate(df, items, model=model)        # correct, lang_ok, ppl, group
print(ev[["item_id", "src_layer", "tgt_layer", "response", "correct", "ppl"]].to_string(index=False))
print(analysis.accuracy_table(ev, ("lang",)).round(1).to_string(index=False))
