/* SPDX-License-Identifier: Apache-2.0 */
/* tokens — the token-streaming model: a deterministic stream of tokens.
 *
 * A token model (--token-model NAME) answers a ModelStreamInfer request with
 * max_tokens response messages, one token each, like an LLM that decodes
 * greedily or with a fixed seed. Token i is a function of the request's
 * prompt (its model name, input tensors and raw_input_contents), its seed
 * and i alone, so the same request gives byte-identical messages on every
 * replica and every time (the "resume by replay" contract of
 * docs/stream-resume.md), and message i does not depend on max_tokens. A
 * non-zero <salt> (--nondeterministic) is mixed in to break that on purpose.
 *
 * Message i is a ModelStreamInferResponse whose infer_response has the
 * request's model_name and id, model_version "1", the parameter index = i
 * (int64), an output "token_id" (INT64, shape [1]) and an output "text"
 * (BYTES, shape [1]: a space and one to three syllables that depend on the
 * token id only).
 *
 * Also parses the x-resume-from request metadata ("resume by continuation").
 * Pure logic over protobuf-c structs: no I/O, no global state.
 */
#ifndef INFERGW_REPLICA_TOKENS_H
#define INFERGW_REPLICA_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define RP_TOKENS_MAX     100000      /* max_tokens and --max-tokens: 1..this */
#define RP_TOKENS_DEFAULT 32          /* --max-tokens default */
#define RP_TOKENS_VOCAB   32000       /* token ids are 0..RP_TOKENS_VOCAB-1 */
#define RP_RESUME_MAX     1000000000L /* x-resume-from: 0..this */

/* One request's token stream: what every one of its messages needs. */
struct rp_tokens {
    uint64_t key; /* the prompt, the seed and the salt, hashed */
    long next;    /* index of the next message to produce */
    long end;     /* max_tokens: the stream has this many messages */
    char *model;  /* copies of the request's model_name and id */
    char *id;
};

/* Reads the request's "seed" (int64, default 0) and "max_tokens" (1..
 * RP_TOKENS_MAX, default <max_tokens>) parameters and fills <t> (next = 0).
 * Returns 0; or -1 with <err>: INVALID_ARGUMENT for a bad parameter,
 * RESOURCE_EXHAUSTED when out of memory. Free <t> with rp_tokens_free(). */
int rp_tokens_init(struct rp_tokens *t, const Inference__ModelInferRequest *req, long max_tokens,
                   uint64_t salt, struct rp_error *err);
void rp_tokens_free(struct rp_tokens *t);

/* Token <index>'s id, 0..RP_TOKENS_VOCAB-1. */
uint32_t rp_tokens_id(uint64_t key, long index);

/* Writes token <id>'s text (NUL-terminated, at most 16 bytes) into <buf>. */
void rp_tokens_text(uint32_t id, char buf[16]);

/* The two outputs of a token model's response, token_id (INT64, shape [n])
 * and text (BYTES, shape [1]), over caller-owned ids and text. */
struct rp_token_outputs {
    Inference__ModelInferResponse__InferOutputTensor tid, txt, *outs[2];
    Inference__InferTensorContents cid, ctxt;
    ProtobufCBinaryData text;
    int64_t nshape[1], one[1];
};

/* Fills <o> for ids[0..n) and text[0..textlen); then ir.n_outputs = 2,
 * ir.outputs = o->outs. <o> points into itself: do not copy it. */
void rp_token_outputs_init(struct rp_token_outputs *o, int64_t *ids, size_t n, const char *text,
                           size_t textlen);

/* Packs message <index> of <t> into a malloc'd buffer (*out, *len; the
 * caller frees it). Returns 0, or -1 when out of memory. */
int rp_tokens_pack(const struct rp_tokens *t, long index, uint8_t **out, size_t *len);

/* Parses an x-resume-from value (<s>, <len> bytes, not NUL-terminated): a
 * decimal number 0..RP_RESUME_MAX, digits only. Returns 0 with *n set, or -1 with <err>
 * (INVALID_ARGUMENT, the message names the value). */
int rp_resume_parse(const char *s, size_t len, long *n, struct rp_error *err);

#endif
