use cachet::cached;
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, non_snake_case, unused_variables)]
pub fn __cachet_key_fetch_external(
    endpoint: String,
    page: u32,
) -> ::cachet::__private::CallKey {
    #[allow(unused_variables)]
    let endpoint = &endpoint;
    #[allow(unused_variables)]
    let page = &page;
    ::cachet::__private::CallKey {
        cache: ::cachet::__private::cache(),
        key: {
            let mut __cachet_key_builder = ::cachet::__private::KeyBuilder::new(
                "macrotest001",
            );
            __cachet_key_builder.arg(endpoint);
            __cachet_key_builder.arg(page);
            __cachet_key_builder.finish("fetch_external")
        },
        scope: ::cachet::__private::scope(
            ::cachet::__private::Option::None,
            ::alloc::vec::Vec::new(),
        ),
    }
}
pub async fn fetch_external(endpoint: String, page: u32) -> Vec<u8> {
    let __cachet_call_key: ::cachet::__private::CallKey = {
        #[allow(unused_variables)]
        let endpoint = &endpoint;
        #[allow(unused_variables)]
        let page = &page;
        ::cachet::__private::CallKey {
            cache: ::cachet::__private::cache(),
            key: {
                let mut __cachet_key_builder = ::cachet::__private::KeyBuilder::new(
                    "macrotest001",
                );
                __cachet_key_builder.arg(endpoint);
                __cachet_key_builder.arg(page);
                __cachet_key_builder.finish("fetch_external")
            },
            scope: ::cachet::__private::scope(
                ::cachet::__private::Option::None,
                ::alloc::vec::Vec::new(),
            ),
        }
    };
    ::cachet::__private::call(
            __cachet_call_key,
            ::cachet::__private::plan(
                ::cachet::__private::Timeout::After(
                    ::cachet::__private::Duration::from_secs(1800),
                ),
                ::cachet::__private::Option::None,
            ),
            |_| false,
            async move {
                #[allow(
                    unreachable_code,
                    clippy::diverging_sub_expression,
                    clippy::empty_loop,
                    clippy::let_unit_value,
                    clippy::needless_return,
                    clippy::unreachable
                )]
                if false {
                    let __cachet_fake_return: Vec<u8> = loop {};
                    return __cachet_fake_return;
                }
                let _ = (endpoint, page);
                Vec::new()
            },
            ::cachet::__private::pick_value(),
        )
        .await
}
