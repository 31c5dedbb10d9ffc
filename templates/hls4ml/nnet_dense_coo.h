// hwprune: a Dense layer whose weights are stored compressed, as (input index, output
// index, value) triples of the nonzero weights only (COO). Copied verbatim into an hls4ml
// project by hwprune's hls4ml backend; it replaces hls4ml's own compressed kernel.
//
// Arithmetic is hls4ml's Dense: acc = accum(bias); acc += accum(x[row] * w) per nonzero;
// res = result(acc). The entries are visited in a different order than the dense loop, so
// hwprune uses this kernel only when the accumulator is exact (it never overflows and every
// product fits it without rounding); then the order cannot change a bit of the result.
#ifndef NNET_DENSE_COO_H_
#define NNET_DENSE_COO_H_

#include "nnet_common.h"

namespace nnet {

template <class row_T, class col_T, class weight_T> struct coo_entry {
    row_T row;
    col_T col;
    weight_T weight;
};

template <class data_T, class res_T, typename CONFIG_T>
void dense_coo(data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_out],
               const typename CONFIG_T::entry_t weights[CONFIG_T::n_entries],
               typename CONFIG_T::bias_t biases[CONFIG_T::n_out]) {
    const unsigned per_cycle = DIV_ROUNDUP(CONFIG_T::n_entries, CONFIG_T::reuse_factor);

    typename CONFIG_T::accum_t acc[CONFIG_T::n_out];
    #pragma HLS ARRAY_PARTITION variable=acc complete
    #pragma HLS ARRAY_PARTITION variable=biases complete
    #pragma HLS ARRAY_RESHAPE variable=weights block factor=per_cycle

InitAccum:
    for (unsigned i = 0; i < CONFIG_T::n_out; i++) {
        #pragma HLS UNROLL
        acc[i] = (typename CONFIG_T::accum_t)biases[i];
    }

ReuseLoop:
    for (unsigned ir = 0; ir < CONFIG_T::reuse_factor; ir++) {
        #pragma HLS PIPELINE II=1 rewind
    EntryLoop:
        for (unsigned im = 0; im < per_cycle; im++) {
            #pragma HLS UNROLL
            unsigned w = im * CONFIG_T::reuse_factor + ir;
            if (w < CONFIG_T::n_entries) {
                typename CONFIG_T::accum_t product = data[weights[w].row] * weights[w].weight;
                acc[weights[w].col] += product;
            }
        }
    }

ResultLoop:
    for (unsigned i = 0; i < CONFIG_T::n_out; i++) {
        #pragma HLS UNROLL
        res[i] = (res_T)acc[i];
    }
}

} // namespace nnet

#endif
