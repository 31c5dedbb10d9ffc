// The module behind one input pin and one output pin, for parts whose place-and-route has no
// out-of-context mode (iCE40, Gowin): a shift register loads model_inp bit by bit, and every
// output bit is folded into a shift register that drives the output pin, so no logic of the
// module can be optimized away. Adds @IN_W@ + @OUT_W@ flip-flops and at most @OUT_W@ LUTs.
`timescale 1 ns / 1 ps

module hwprune_io_wrapper (
    input clk,
    input serial_in,
    output serial_out
);
    reg [@IN_W@-1:0] in_shift = 0;
    reg [@OUT_W@-1:0] out_shift = 0;
    wire [@OUT_W@-1:0] model_out;

    @MODULE@ dut (.clk(clk), .model_inp(in_shift), .model_out(model_out));

    always @(posedge clk) begin
        in_shift <= {in_shift, serial_in};
        out_shift <= {out_shift, 1'b0} ^ model_out;
    end
    assign serial_out = out_shift[@OUT_W@-1];
endmodule
