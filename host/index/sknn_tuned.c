/*
** sknn_tuned.c: reading a shop's tuned parameters (`tailor tune --out`,
** written by host/eval/tune.c): tailor's parameters over its defaults and
** the re-ranker model beside them.
*/
#include "index/sknn_rerank.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"

void sknn_tuned_free(sknn_tuned *t) {
  if (!t) return;
  sknn_ranker_free(t->ranker);
  t->ranker = NULL;
}

/*
** The model's features, as the file lists them, must be this build's, in
** its order: a model trained on other columns would score nonsense without
** failing.  (A file without the list is checked by the model's feature
** count alone.)
*/
static int check_features(const char *path, const json_t *f, tailor_error *err) {
  if (!f) return 0;
  if (!json_is_array(f))
    return util_fail(err, TAILOR_EPARSE, "features", "%s: features: not an array", path);
  size_t n = json_array_size(f);
  for (size_t i = 0; i < n || i < SKNN_RERANK_NFEATURES; i++) {
    const char *have = json_string_value(json_array_get(f, i));
    const char *want = sknn_rerank_feature_name((int)i);
    if (have && want && !strcmp(have, want)) continue;
    return util_fail(err, TAILOR_EINVAL, "features",
                     "%s: features: the model was trained on other features than "
                     "this build's (feature %zu is '%s' there, '%s' here): tune again",
                     path, i + 1, have ? have : "-", want ? want : "-");
  }
  return 0;
}

int sknn_tuned_load(const char *path, sknn_tuned *t, tailor_error *err) {
  memset(t, 0, sizeof *t);
  sknn_params_default(&t->params, SKNN_TAILOR);
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  if (!root)
    return je.line > 0 ? util_fail(err, TAILOR_EPARSE, "tuned", "%s:%d: %s", path,
                                   je.line, je.text)
                       : util_fail(err, TAILOR_EIO, "tuned", "%s", je.text);
  int rc = 0;
  json_t *params = json_object_get(root, "params");
  const char *kernel = json_string_value(json_object_get(root, "kernel"));
  if (!json_is_object(root) || !json_is_object(params)) {
    rc = util_fail(err, TAILOR_EPARSE, "params",
                   "%s: not tuned parameters (no \"params\" object)", path);
    goto done;
  }
  if (kernel && strcmp(kernel, "tailor")) {
    rc = util_fail(err, TAILOR_EINVAL, "kernel",
                   "%s: parameters of kernel '%s'; only tailor's are used", path, kernel);
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(params, key, v) {
    char kv[128];
    double d = json_number_value(v);
    if (!json_is_number(v) ||
        snprintf(kv, sizeof kv, "%s=%.17g", key, d) >= (int)sizeof kv ||
        sknn_params_set(&t->params, kv)) {
      rc = util_fail(err, TAILOR_EINVAL, key,
                     "%s: params.%s: not a parameter of tailor, or out of range",
                     path, key);
      goto done;
    }
  }
  const char *model = json_string_value(json_object_get(root, "model"));
  if (model && *model && (rc = check_features(path, json_object_get(root, "features"), err)))
    goto done;
  if (model && *model) {
    if (model[0] == '/') {
      snprintf(t->model, sizeof t->model, "%s", model);
    } else {
      const char *slash = strrchr(path, '/');
      int dir = slash ? (int)(slash - path + 1) : 0;
      snprintf(t->model, sizeof t->model, "%.*s%s", dir, path, model);
    }
    if (!(t->ranker = sknn_ranker_load(t->model, err))) rc = err ? err->code : TAILOR_EIO;
  }
done:
  json_decref(root);
  return rc;
}
