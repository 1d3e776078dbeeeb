-- The tables of a typical domestic ERP and WMS on MariaDB/MySQL, as docs/mapping.md describes
-- them: the example that domestic.toml maps syncd onto (syncd bridge example prints both).
-- Times are Beijing time in DATETIME columns without a time zone.

CREATE TABLE oms_order (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    platform VARCHAR(16) NOT NULL,            -- AMAZON, SHOPEE …
    shop_code VARCHAR(32) NOT NULL,           -- the ERP's code of the store
    platform_order_no VARCHAR(64) NOT NULL,   -- Amazon's order id
    site VARCHAR(8),                          -- US, DE, JP …
    order_status TINYINT NOT NULL,            -- 10 pending, 20 to ship, 30 shipped, 90 cancelled …
    warehouse_type TINYINT NOT NULL,          -- 1 own warehouse (MFN), 2 FBA
    order_time DATETIME NOT NULL,             -- Beijing time
    latest_ship_time DATETIME NULL,           -- Beijing time
    total_amount DECIMAL(14, 2),
    currency CHAR(3),
    receiver_name VARCHAR(128),
    receiver_zip VARCHAR(32),
    pick_status TINYINT NOT NULL DEFAULT 0,   -- the ERP's own picking state
    remark VARCHAR(255),
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    UNIQUE KEY uk_platform_order (platform, shop_code, platform_order_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE oms_order_item (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    order_id BIGINT NOT NULL,                 -- oms_order.id
    platform_item_id VARCHAR(64) NOT NULL,    -- Amazon's order item id
    platform_sku VARCHAR(64),                 -- Amazon's seller SKU
    sku VARCHAR(64) NOT NULL,                 -- the ERP's SKU
    title VARCHAR(500),
    qty INT NOT NULL,
    unit_price DECIMAL(14, 2),
    UNIQUE KEY uk_order_item (order_id, platform_item_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE base_sku_mapping (
    id INT AUTO_INCREMENT PRIMARY KEY,
    platform VARCHAR(16) NOT NULL,
    shop_code VARCHAR(32) NOT NULL,
    platform_sku VARCHAR(64) NOT NULL,
    sku VARCHAR(64) NOT NULL,
    UNIQUE KEY uk_sku (platform, shop_code, platform_sku)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE wms_delivery (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    platform VARCHAR(16) NOT NULL,
    shop_code VARCHAR(32) NOT NULL,
    platform_order_no VARCHAR(64) NOT NULL,
    logistics_company VARCHAR(64),            -- 云途, 燕文, 4PX …
    logistics_channel VARCHAR(64),            -- 云途全球专线挂号 …
    tracking_no VARCHAR(64),
    delivery_time DATETIME,                   -- Beijing time
    status TINYINT NOT NULL DEFAULT 1,        -- 1 packing, 2 handed to the carrier
    amz_upload_status TINYINT NOT NULL DEFAULT 0,
    amz_upload_msg VARCHAR(500),
    amz_upload_time DATETIME,
    update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
