// Package tasks measures zero-shot accuracy the way EleutherAI's
// lm-evaluation-harness does, so the numbers can stand next to published
// pruning tables (Wanda, SparseGPT, RIA, UniPruning).
//
// Three parts mirror the harness:
//   - Scorer: loglikelihood requests (context, continuation) scored as
//     lm_eval/models/huggingface.py _loglikelihood_tokens does for a causal
//     model: context and continuation encoded by TemplateLM._encode_pair,
//     input (context+continuation)[-(max_length+1):][:-1] (left truncation),
//     score = Σ log p(continuation tokens), is_greedy = every continuation
//     token is the argmax.
//   - Task: the harness task definitions (lm_eval/tasks/*/…yaml and their
//     utils): prompt (doc_to_text), choices (doc_to_choice), gold
//     (doc_to_target), target delimiter " ", and which metrics are reported;
//     rebuilt from the data files in ../shared/data/tasks (MosaicML
//     eval-gauntlet JSONL, the original HellaSwag JSONL, GLUE RTE TSV).
//   - Report: acc / acc_norm per task as ConfigurableTask.process_results
//     computes them, with the harness's standard error of the mean.
//
// The harness revision read for this port is EleutherAI/lm-evaluation-harness
// 4e7e0d47f33bc71070c1d38394bafbb52b117163; file references in comments are
// relative to that tree.
package tasks
