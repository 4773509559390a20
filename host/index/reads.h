/*
** reads.h: what readers of content go on to view, cart and buy.  Catalog
** items of kind "content" (guides, blog posts) are read, not bought; a
** view of one notes it among the reader's last reads, and what the reader
** views, carts or buys after it in the same visit (search.h's window and
** weights: views 1, carts 3, purchases 5) counts for the item under the
** content read.  The counting is search.h's, in a search_index of its own
** (idx.reads) whose "terms" are content items' index ids in decimal.
**
** From that: the products a guide leads to (reads_after, products), the
** content read next (reads_after, content), and for a product the content
** whose readers went on to it (reads_before).  Readers run under the
** index's read lock.
*/
#ifndef TAILOR_READS_H
#define TAILOR_READS_H

#include <stdint.h>

#include "index/index.h"

/* A view of `item` by person at ts: credit it under the person's earlier
   reads, and note it as a read when it is content.  0, or -1 out of memory. */
int reads_view(idx *x, uint32_t person, uint32_t session, uint32_t item, int64_t ts);

/* A cart or purchase of `item` (weight w) credited under the reads before it. */
int reads_credit(idx *x, uint32_t person, uint32_t session, uint32_t item, double w,
                 int64_t ts);

/*
** The k items most led to by reading `content`, heaviest first: content
** items when `want_content`, else products; never the content itself;
** those `keep` (may be NULL) accepts.  Rows' aux is `content`.
*/
size_t reads_after(const idx *x, uint32_t content, int want_content,
                   int (*keep)(void *ud, uint32_t item), void *ud, size_t k,
                   topk_entry *out);

/* The k content items whose readers went on to `item` most, heaviest
   first, those `keep` accepts.  Rows' aux is `item`. */
size_t reads_before(const idx *x, uint32_t item, int (*keep)(void *ud, uint32_t item),
                    void *ud, size_t k, topk_entry *out);

#endif /* TAILOR_READS_H */
