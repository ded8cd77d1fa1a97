pub struct Gpu;
