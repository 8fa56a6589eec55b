"""Fine-tuning and evaluation (electra-spec 3): GLUE, SQuAD 1.1/2.0, token tagging and your own data.

    config.py   FinetuneConfig: the paper's recipe, every field overridable from the command line
    glue.py     the GLUE task table, TSV readers, pair encoding, leaderboard prediction files
    squad.py    SQuAD features with a document stride, n-best span extraction
    tagging.py  CoNLL readers, first-sub-token labelling; `--task tag` for any tag set
    custom.py   your own classification / regression files (CSV, TSV, JSONL): `--task classify | regress`
    files.py    finding a task's folder under --data, one-line errors for missing files
    metrics.py  MCC, F1, macro F1, Pearson, Spearman, GLUE score, conlleval span F1, SQuAD EM/F1
    heads.py    classification / regression / tagging / QA heads and the encoder + head model
    train.py    the loop (layer-wise LR, warmup + linear decay, Adam without bias correction, the loss
                reduction), batching, saving
    cli.py      `electra finetune`
    predict.py  `electra predict`: a saved fine-tuned model on new text
    predict_inputs.py  its inputs: command-line texts, or lines, tables, JSON Lines, CoNLL or SQuAD files
"""
