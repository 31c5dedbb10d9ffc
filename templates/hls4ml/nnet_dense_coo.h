// hwprune: a Dense layer whose weights are stored compressed, as (input index, output
// index, value) triples of the nonzero weights only (COO). Copied verbatim into an hls4ml
// project by hwprune's hls4ml backend; it replaces hls4ml's own compressed kernel.
//
// Arithmetic is hls4ml's Dense: acc = accum(bias); acc += accum(x[row] * w) per nonzero;
// res = result(acc). The entries are visited in a different order than the dense loop, so
// hwprune uses this kernel only when the accumulator is exact (it never overflows and every
// product fits it without rounding); then the order cannot change a bit of the result.
//
// With io_stream, the second overload reads the input stream into an array, runs the same
// kernel and writes the result stream, as hls4ml's own streamed Dense does around its kernels.
#ifndef NNET_DENSE_COO_H_
#define NNET_DENSE_COO_H_

#include "hls_stream.h"
#include "nnet_common.h"
#include "nnet_types.h"

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

template <class data_T, class res_T, typename CONFIG_T>
void dense_coo(hls::stream<data_T> &data_stream, hls::stream<res_T> &res_stream,
               const typename CONFIG_T::entry_t weights[CONFIG_T::n_entries],
               typename CONFIG_T::bias_t biases[CONFIG_T::n_out]) {
    typename data_T::value_type data[CONFIG_T::n_in];
    #pragma HLS ARRAY_PARTITION variable=data complete
    typename res_T::value_type res[CONFIG_T::n_out];
    #pragma HLS ARRAY_PARTITION variable=res complete

DataPrepare:
    for (unsigned i_in = 0; i_in < CONFIG_T::n_in / data_T::size; i_in++) {
        data_T data_pack = data_stream.read();
    DataPack:
        for (unsigned i_pack = 0; i_pack < data_T::size; i_pack++) {
            #pragma HLS UNROLL
            data[i_in * data_T::size + i_pack] = data_pack[i_pack];
        }
    }

    dense_coo<typename data_T::value_type, typename res_T::value_type, CONFIG_T>(data, res, weights, biases);

ResWrite:
    for (unsigned i_out = 0; i_out < CONFIG_T::n_out / res_T::size; i_out++) {
        res_T res_pack;
        PRAGMA_DATA_PACK(res_pack)
    ResPack:
        for (unsigned i_pack = 0; i_pack < res_T::size; i_pack++) {
            #pragma HLS UNROLL
            res_pack[i_pack] = res[i_out * res_T::size + i_pack];
        }
        res_stream.write(res_pack);
    }
}

} // namespace nnet

#endif
